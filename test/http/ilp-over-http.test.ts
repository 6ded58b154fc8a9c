import { randomBytes } from 'node:crypto'
import { Writable } from 'node:stream'
import { serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { pino } from 'pino'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** The HTTP edge of the packet path: auth, body checks, and hostile input. */
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let logs = ''

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs += chunk.toString()
      done()
    },
  })
  farm = await startTestFarm(
    redis.url,
    [account('alice', { minBalance: '-1000000' }), account('bob', { outgoing: { url: bob.url } })],
    {},
    { logger: pino({ level: 'trace' }, sink) },
  )
})

afterAll(async () => {
  await farm?.close()
  await bob?.close()
  await redis?.close()
})

const validPrepare = () => serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '10', knownCondition()))

async function assertNothingMoved(): Promise<void> {
  const hotSet = await adminGet<unknown[]>(farm.url, '/admin/hotset')
  expect(hotSet.json).toEqual([])
}

describe('POST /accounts/:id/ilp', () => {
  it('401 without a token, with a wrong token, for an unknown account, and never logs the token', async () => {
    expect((await sendIlp(farm.url, 'alice', validPrepare(), { token: null })).status).toBe(401)
    expect((await sendIlp(farm.url, 'alice', validPrepare(), { token: 'wrong-secret-xyz' })).status).toBe(401)
    expect((await sendIlp(farm.url, 'alice', validPrepare(), { token: 'bob-token' })).status).toBe(401)
    expect((await sendIlp(farm.url, 'mallory', validPrepare(), { token: 'alice-token' })).status).toBe(401)
    const res = await request(`${farm.url}/accounts/alice/ilp`, {
      method: 'POST',
      headers: { authorization: 'Basic alice-token', 'content-type': 'application/octet-stream' },
      body: validPrepare(),
    })
    expect(res.statusCode).toBe(401)
    await res.body.dump()
    expect(logs).not.toContain('wrong-secret-xyz')
    expect(logs).not.toContain('alice-token')
    expect(await balanceOf(farm.url, 'alice')).toBe('0')
  })

  it('accepts application/octet-stream and application/ilp+octet-stream', async () => {
    for (const contentType of ['application/octet-stream', 'application/ilp+octet-stream']) {
      const res = await sendIlp(farm.url, 'alice', validPrepare(), { contentType })
      expect(res.status).toBe(200)
      expect(res.packet?.type).toBe(13)
    }
  })

  it('400 for a body that is not an ILP Prepare', async () => {
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
    for (const body of [fulfill, Buffer.from('hello world'), Buffer.alloc(0), Buffer.from([12])]) {
      expect((await sendIlp(farm.url, 'alice', body)).status).toBe(400)
    }
  })

  it('413 over 40000 bytes; a full-size Prepare (32767 bytes of data) is fine', async () => {
    const big = await sendIlp(farm.url, 'alice', Buffer.alloc(40_001, 12))
    expect(big.status).toBe(413)
    const full = prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition())
    full.data = randomBytes(32767)
    const res = await sendIlp(farm.url, 'alice', full)
    expect(res.status).toBe(200)
    expect(res.packet?.type).toBe(13)
    expect(bob.received.at(-1)!.prepare.data.equals(full.data)).toBe(true)
  })

  it('survives random bytes, truncated packets and oversize lengths with a clear error and no balance change', async () => {
    const before = await balanceOf(farm.url, 'alice')
    const bobBefore = await balanceOf(farm.url, 'bob')
    const good = validPrepare()
    const bodies: Buffer[] = []
    for (let i = 0; i < 200; i++) bodies.push(randomBytes(1 + Math.floor(Math.random() * 300)))
    for (let i = 0; i < 200; i++) {
      const b = randomBytes(1 + Math.floor(Math.random() * 300))
      b[0] = 12 // looks like a Prepare
      bodies.push(b)
    }
    for (let cut = 1; cut < good.length; cut++) bodies.push(good.subarray(0, cut))
    // envelope length prefixes claiming far more than is there
    bodies.push(Buffer.concat([Buffer.from([12, 0x84, 0xff, 0xff, 0xff, 0xff]), good.subarray(2)]))
    bodies.push(Buffer.concat([Buffer.from([12, 0x82, 0x9c, 0x40]), good.subarray(2)]))
    bodies.push(Buffer.concat([Buffer.from([12, 0x80]), good.subarray(2)])) // zero-length long form
    // a Prepare whose destination length runs past the end
    const badDest = Buffer.from(good)
    badDest[2 + 8 + 17 + 32] = 0x7f
    bodies.push(badDest)

    const statuses = new Map<number, number>()
    for (const body of bodies) {
      const res = await sendIlp(farm.url, 'alice', body)
      statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1)
      expect([200, 400]).toContain(res.status)
      if (res.status === 200) {
        expect(res.packet?.type).toBe(14)
        if (res.packet?.type === 14) expect(['F01', 'F02', 'R02']).toContain(res.packet.data.code)
      }
    }
    expect(statuses.get(400)).toBeGreaterThan(0)
    expect(await balanceOf(farm.url, 'alice')).toBe(before)
    expect(await balanceOf(farm.url, 'bob')).toBe(bobBefore)
    await assertNothingMoved()
    // and still serving
    expect((await sendIlp(farm.url, 'alice', validPrepare())).packet?.type).toBe(13)
  })
})

describe('admin and health', () => {
  it('GET /admin/accounts/:id needs the admin token and returns the balance as a decimal string', async () => {
    expect((await adminGet(farm.url, '/admin/accounts/alice', null)).status).toBe(401)
    expect((await adminGet(farm.url, '/admin/accounts/alice', 'alice-token')).status).toBe(401)
    expect((await adminGet(farm.url, '/admin/accounts/nobody')).status).toBe(404)
    const { status, json } = await adminGet<{ id: string; balance: string }>(farm.url, '/admin/accounts/alice')
    expect(status).toBe(200)
    expect(json.id).toBe('alice')
    expect(json.balance).toMatch(/^-?\d+$/)
  })

  it('GET /health reports Redis', async () => {
    const res = await request(`${farm.url}/health`)
    expect(res.statusCode).toBe(200)
    expect(await res.body.json()).toEqual({ status: 'ok', redis: 'up' })
  })
})
