import { randomUUID } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import { type AddressInfo, connect } from 'node:net'
import { Readable } from 'node:stream'
import { serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { syncIlpShortcut } from '../../src/http/ilp-fast-path.js'
import { account, balanceOf, FARM_ADDRESS, prepareTo, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The sync prepare's fast path, in front of fastify's router: what it takes
 * it answers exactly as the fastify route does, and it leaves everything
 * else to fastify. A server of the test's own runs the farm worker's real
 * shortcut and records what fell through; the same requests sent to the
 * farm with a query string (which the shortcut never takes, and fastify's
 * router ignores) show the route's answers.
 */
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let shortcutServer: Server
let shortcutUrl: string
const fellThrough: string[] = []
let closing = false

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  farm = await startTestFarm(redis.url, [account('alice', { minBalance: '-1000000' }), account('bob', { outgoing: { url: bob.url } })])
  const shortcut = syncIlpShortcut(farm.worker.services, () => closing)
  shortcutServer = createServer((req, res) => {
    if (shortcut(req, res)) return
    fellThrough.push(`${req.method} ${req.url}`)
    req.resume()
    res.writeHead(599).end()
  })
  await new Promise<void>((resolve) => shortcutServer.listen(0, '127.0.0.1', resolve))
  shortcutUrl = `http://127.0.0.1:${(shortcutServer.address() as AddressInfo).port}`
})

afterAll(async () => {
  await new Promise((resolve) => shortcutServer?.close(resolve))
  await farm?.close()
  await bob?.close()
  await redis?.close()
})

interface Answer {
  status: number
  contentType: string | undefined
  body: Buffer
}

async function post(url: string, headers: Record<string, string>, body: Buffer | Readable): Promise<Answer> {
  const res = await request(url, { method: 'POST', headers, body })
  return { status: res.statusCode, contentType: res.headers['content-type'] as string | undefined, body: Buffer.from(await res.body.arrayBuffer()) }
}

const ilpHeaders = (token = 'alice-token', extra: Record<string, string> = {}) => ({
  'content-type': 'application/octet-stream',
  authorization: `Bearer ${token}`,
  ...extra,
})

/** The same request, the same bytes, through the shortcut and through fastify's route: both answers. */
async function both(path: string, headers: Record<string, string>, body: () => Buffer): Promise<[Answer, Answer]> {
  const bytes = body()
  const before = fellThrough.length
  const fast = await post(`${shortcutUrl}${path}`, headers, bytes)
  expect(fellThrough.slice(before), 'the shortcut took it').toEqual([])
  const routed = await post(`${farm.url}${path}?via=router`, headers, bytes)
  return [fast, routed]
}

describe('the sync ILP-over-HTTP fast path', () => {
  it('answers errors as the fastify route does: 401 for a wrong token or an unknown account, 400 for a bad Request-Id or a body that is not a Prepare', async () => {
    const prepare = () => serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '10', knownCondition()))
    const fulfill = () => serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
    const cases: Array<[string, Record<string, string>, () => Buffer, number]> = [
      ['/accounts/alice/ilp', ilpHeaders('wrong-token'), prepare, 401],
      ['/accounts/mallory/ilp', ilpHeaders(), prepare, 401],
      ['/accounts/alice/ilp', ilpHeaders('alice-token', { 'request-id': 'not-a-uuid' }), prepare, 400],
      ['/accounts/alice/ilp', ilpHeaders(), fulfill, 400],
      ['/accounts/alice/ilp', ilpHeaders(), () => Buffer.from('hello world'), 400],
    ]
    for (const [path, headers, body, status] of cases) {
      const [fast, routed] = await both(path, headers, body)
      expect(fast.status).toBe(status)
      expect(routed.status).toBe(status)
      expect(JSON.parse(fast.body.toString())).toEqual(JSON.parse(routed.body.toString()))
      expect(fast.contentType).toMatch(/^application\/json/)
    }
    expect(await balanceOf(farm.url, 'alice')).toBe('0')
  })

  it('answers a prepare with the same packet as the route: a Fulfill, and the farm’s own reject byte for byte', async () => {
    const [fast, routed] = await both('/accounts/alice/ilp', ilpHeaders(), () =>
      serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '10', knownCondition())),
    )
    expect([fast.status, routed.status]).toEqual([200, 200])
    expect(fast.contentType).toBe('application/octet-stream')
    expect(fast.body[0]).toBe(13) // Fulfill
    expect(fast.body.equals(routed.body)).toBe(true)
    expect(await balanceOf(farm.url, 'alice')).toBe('-20')
    expect(await balanceOf(farm.url, 'bob')).toBe('20')

    // no route: the farm's F02, the same bytes either way
    const [noRoute, noRouteRouted] = await both('/accounts/alice/ilp', ilpHeaders(), () =>
      serializeIlpPrepare(prepareTo('test.nowhere.carl', '10', knownCondition())),
    )
    expect(noRoute.body[0]).toBe(14) // Reject
    expect(noRoute.body.equals(noRouteRouted.body)).toBe(true)
  })

  it('a Request-Id names the packet on the fast path too: the same id again is F00 for the route', async () => {
    const id = randomUUID()
    const body = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '5', knownCondition()))
    const first = await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders('alice-token', { 'request-id': id }), body)
    expect(first.body[0]).toBe(13)
    const again = await post(`${farm.url}/accounts/alice/ilp?via=router`, ilpHeaders('alice-token', { 'request-id': id }), body)
    expect(again.body[0]).toBe(14)
    expect(again.body.toString('latin1')).toContain('F00')
  })

  it('a connection cut off mid-body sends nothing on and moves no money; the next packet is served', async () => {
    const prepare = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '7', knownCondition()))
    const [aliceBefore, bobBefore, forwardedBefore] = [await balanceOf(farm.url, 'alice'), await balanceOf(farm.url, 'bob'), bob.received.length]
    const fellBefore = fellThrough.length
    const { port } = new URL(shortcutUrl)
    const socket = connect(Number(port), '127.0.0.1')
    await new Promise<void>((resolve) => socket.once('connect', resolve))
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.write(
      `POST /accounts/alice/ilp HTTP/1.1\r\nHost: farm\r\ncontent-type: application/octet-stream\r\n` +
        `authorization: Bearer alice-token\r\ncontent-length: ${prepare.length}\r\n\r\n`,
    )
    socket.write(prepare.subarray(0, prepare.length >> 1))
    await new Promise((resolve) => setTimeout(resolve, 50))
    socket.destroy()
    await closed
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(fellThrough.length, 'the shortcut took it').toBe(fellBefore)
    expect(bob.received.length).toBe(forwardedBefore)
    expect([await balanceOf(farm.url, 'alice'), await balanceOf(farm.url, 'bob')]).toEqual([aliceBefore, bobBefore])

    const next = await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders(), prepare)
    expect(next.body[0]).toBe(13) // Fulfill
    expect(bob.received.length).toBe(forwardedBefore + 1)
    expect(BigInt(await balanceOf(farm.url, 'alice'))).toBe(BigInt(aliceBefore) - 7n)
  })

  it('leaves to fastify what it does not answer the same way: async, other content types, no or chunked body, a query, other methods and paths, and anything once the server is closing', async () => {
    const prepare = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '10', knownCondition()))
    // a stream of unknown length: undici sends it chunked
    const chunked = () => Readable.from([prepare.subarray(0, 10), prepare.subarray(10)])
    const before = fellThrough.length
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders('alice-token', { prefer: 'respond-async', 'request-id': randomUUID() }), prepare)
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders('alice-token', { 'callback-url': 'https://example.com/cb' }), prepare)
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders('alice-token', { 'content-type': 'application/json' }), prepare)
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders(), Buffer.alloc(0))
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders(), chunked())
    await post(`${shortcutUrl}/accounts/alice/ilp?x=1`, ilpHeaders(), prepare)
    await post(`${shortcutUrl}/accounts/alice/ilp/callbacks`, ilpHeaders(), prepare)
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders(), Buffer.alloc(40_001))
    const get = await request(`${shortcutUrl}/accounts/alice/ilp`)
    await get.body.dump()
    // a closing server: new requests are the router's (fastify answers them 503)
    closing = true
    await post(`${shortcutUrl}/accounts/alice/ilp`, ilpHeaders(), prepare)
    closing = false
    expect(fellThrough.slice(before)).toEqual([
      'POST /accounts/alice/ilp',
      'POST /accounts/alice/ilp',
      'POST /accounts/alice/ilp',
      'POST /accounts/alice/ilp',
      'POST /accounts/alice/ilp',
      'POST /accounts/alice/ilp?x=1',
      'POST /accounts/alice/ilp/callbacks',
      'POST /accounts/alice/ilp',
      'GET /accounts/alice/ilp',
      'POST /accounts/alice/ilp',
    ])
  })
})
