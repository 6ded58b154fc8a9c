import { connect, type Socket } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The listening socket's limits (http.*): a request trickled in slowly is cut
 * off at requestTimeoutMs, one whose headers never end at headersTimeoutMs, a
 * connection beyond maxConnections is closed at once; requests within the
 * limits are served as before.
 */
let redis: TestRedis
let farm: TestFarm

const REQUEST_TIMEOUT_MS = 2_000
const HEADERS_TIMEOUT_MS = 1_000
const MAX_CONNECTIONS = 5

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [account('alice')], {
    http: {
      host: '127.0.0.1',
      port: 0,
      requestTimeoutMs: REQUEST_TIMEOUT_MS,
      headersTimeoutMs: HEADERS_TIMEOUT_MS,
      keepAliveTimeoutMs: 5_000,
      maxConnections: MAX_CONNECTIONS,
    },
  })
})

afterAll(async () => {
  await farm?.close()
  await redis?.close()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const port = () => Number(new URL(farm.url).port)

/** A raw connection; resolves `closed` with what the server sent and when, once it closes. */
function open(): Promise<{ socket: Socket; closed: Promise<{ at: number; received: string }> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port(), '127.0.0.1')
    let received = ''
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => (received += chunk))
    const closed = new Promise<{ at: number; received: string }>((done) => socket.on('close', () => done({ at: Date.now(), received })))
    socket.on('error', () => undefined)
    socket.once('connect', () => resolve({ socket, closed }))
    socket.once('error', reject)
  })
}

describe('http limits', () => {
  it('a body trickled one byte a second is cut off within requestTimeoutMs', async () => {
    const { socket, closed } = await open()
    const started = Date.now()
    socket.write('POST /rpc HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n')
    const trickle = setInterval(() => !socket.destroyed && socket.write('['), 1_000)
    const end = await Promise.race([closed, sleep(REQUEST_TIMEOUT_MS + 5_000).then(() => undefined)])
    clearInterval(trickle)
    socket.destroy()
    expect(end, 'the connection stayed open').toBeDefined()
    const after = end!.at - started
    console.log(`trickled body cut off after ${after} ms (requestTimeoutMs ${REQUEST_TIMEOUT_MS})`)
    expect(after).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS - 100)
    expect(after).toBeLessThan(REQUEST_TIMEOUT_MS + 1_500)
    expect(end!.received).toMatch(/^HTTP\/1\.1 408/)
  })

  it('headers that never end are cut off within headersTimeoutMs', async () => {
    const { socket, closed } = await open()
    const started = Date.now()
    socket.write('GET /health HTTP/1.1\r\nHost: x\r\n')
    const trickle = setInterval(() => !socket.destroyed && socket.write('X-A: b\r\n'), 200)
    const end = await Promise.race([closed, sleep(HEADERS_TIMEOUT_MS + 5_000).then(() => undefined)])
    clearInterval(trickle)
    socket.destroy()
    expect(end, 'the connection stayed open').toBeDefined()
    expect(end!.at - started).toBeLessThan(HEADERS_TIMEOUT_MS + 1_500)
  })

  it('connections beyond maxConnections are closed at once; the ones within are served, and normal traffic goes on', async () => {
    const held = await Promise.all(Array.from({ length: MAX_CONNECTIONS }, open))
    // one request on a held connection proves the server adopted it
    held[0]!.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
    await sleep(300)
    const extra = await open()
    const extraStarted = Date.now()
    extra.socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n')
    const refused = await Promise.race([extra.closed, sleep(2_000).then(() => undefined)])
    expect(refused, 'the connection over the cap stayed open').toBeDefined()
    expect(refused!.at - extraStarted).toBeLessThan(500)
    expect(refused!.received).toBe('')
    for (const h of held) h.socket.destroy()
    await Promise.all(held.map((h) => h.closed))
    expect((await Promise.all(held.map((h) => h.closed)))[0]!.received).toMatch(/^HTTP\/1\.1 200/)

    // below the cap again: ordinary requests, several on one keep-alive connection
    await sleep(100)
    for (let i = 0; i < 5; i++) {
      const res = await request(`${farm.url}/health`)
      expect(res.statusCode).toBe(200)
      await res.body.text()
    }
  })
})
