import { deserializeIlpReject, serializeIlpPrepare } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REQUEST_ID_MARGIN_MS } from '../../src/store/request-ids.js'
import { account, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { asyncHeaders, type CallbackServer, eventually, newRequestId, sleep, startCallbackServer } from '../helpers/async.js'

/**
 * One owner per packet (the TinyChain rule): a Request-Id is claimed once per
 * account. A replay, in flight or finished, sync or async, is refused and
 * never debited twice: sync gets Reject F00 "duplicate request id", async gets
 * HTTP 409 (and no callback).
 */
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let slow: TestPeer
let cb: CallbackServer

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  slow = await startTestPeer(async (prepare) => {
    await sleep(700)
    return fulfillKnown(prepare)
  })
  cb = await startCallbackServer(() => 200)
  farm = await startTestFarm(redis.url, [
    account('alice', { minBalance: '-1000000', incoming: { token: 'alice-token', callbackUrls: ['http://127.0.0.1:'] } }),
    account('carol', { minBalance: '-1000000', incoming: { token: 'carol-token', callbackUrls: ['http://127.0.0.1:'] } }),
    account('bob', { outgoing: { url: bob.url } }),
    account('slow', { relation: 'peer', outgoing: { url: slow.url }, routes: ['test.slow'] }),
  ])
})

afterAll(async () => {
  await farm?.close()
  await Promise.all([bob, slow, cb].map((s) => s?.close()))
  await redis?.close()
})

const ridKeys = () => redis.client.keys(`${farm.config.redis.keyPrefix}*:rid:*`)

function codeOf(res: { status: number; body: Buffer }): string {
  expect(res.status).toBe(200)
  return res.body[0] === 13 ? 'fulfill' : deserializeIlpReject(res.body).code
}

describe('replayed Request-Id', () => {
  it('sync without a Request-Id writes no replay key (the fast path stays at two Redis calls)', async () => {
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()))
    expect(codeOf(res)).toBe('fulfill')
    expect(await ridKeys()).toEqual([])
  })

  it('sync, finished: the same packet with the same Request-Id gets F00 and is debited once', async () => {
    const before = BigInt(await balanceOf(farm.url, 'alice'))
    const requestId = newRequestId()
    const packet = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '50', knownCondition()))
    const received = bob.received.length
    expect(codeOf(await sendIlp(farm.url, 'alice', packet, { headers: { 'request-id': requestId } }))).toBe('fulfill')
    const replay = await sendIlp(farm.url, 'alice', packet, { headers: { 'request-id': requestId } })
    expect(codeOf(replay)).toBe('F00')
    const reject = deserializeIlpReject(replay.body)
    expect(reject.message).toBe('duplicate request id')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    // a different packet under a used Request-Id, and the id in upper case: refused too
    const other = prepareTo(`${FARM_ADDRESS}.bob`, '51', knownCondition())
    expect(codeOf(await sendIlp(farm.url, 'alice', other, { headers: { 'request-id': requestId.toUpperCase() } }))).toBe('F00')
    expect(bob.received.length - received).toBe(1)
    expect(BigInt(await balanceOf(farm.url, 'alice')) - before).toBe(-50n)
  })

  it('sync, in flight: two concurrent copies, one goes through, the other gets F00', async () => {
    const before = BigInt(await balanceOf(farm.url, 'alice'))
    const slowBefore = BigInt(await balanceOf(farm.url, 'slow'))
    const requestId = newRequestId()
    const packet = serializeIlpPrepare(prepareTo('test.slow.x', '30', knownCondition()))
    const results = await Promise.all(
      [0, 1, 2].map(() => sendIlp(farm.url, 'alice', packet, { headers: { 'request-id': requestId } })),
    )
    expect(results.map(codeOf).sort()).toEqual(['F00', 'F00', 'fulfill'])
    expect(BigInt(await balanceOf(farm.url, 'alice')) - before).toBe(-30n)
    expect(BigInt(await balanceOf(farm.url, 'slow')) - slowBefore).toBe(30n)
  })

  it('async, finished and in flight: 409, no second callback, debited once; sync reuse gets F00', async () => {
    const before = BigInt(await balanceOf(farm.url, 'alice'))
    const requestId = newRequestId()
    const packet = serializeIlpPrepare(prepareTo('test.slow.y', '20', knownCondition()))
    const headers = asyncHeaders(`${cb.url}/cb`, requestId)
    const hits = cb.hits.length
    expect((await sendIlp(farm.url, 'alice', packet, { headers })).status).toBe(202)
    // in flight (the next hop takes 700 ms)
    const inFlight = await sendIlp(farm.url, 'alice', packet, { headers })
    expect(inFlight.status).toBe(409)
    expect(JSON.parse(inFlight.body.toString())).toEqual({ error: 'duplicate request id' })
    await eventually(() => expect(cb.hits.length - hits).toBe(1))
    expect(cb.hits.at(-1)!.body[0]).toBe(13)
    // finished
    expect((await sendIlp(farm.url, 'alice', packet, { headers })).status).toBe(409)
    // the same id in sync mode
    expect(codeOf(await sendIlp(farm.url, 'alice', packet, { headers: { 'request-id': requestId } }))).toBe('F00')
    await sleep(300)
    expect(cb.hits.length - hits).toBe(1)
    expect(BigInt(await balanceOf(farm.url, 'alice')) - before).toBe(-20n)
  })

  it('a sync Request-Id replayed in async mode gets 409', async () => {
    const requestId = newRequestId()
    const packet = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '2', knownCondition()))
    expect(codeOf(await sendIlp(farm.url, 'alice', packet, { headers: { 'request-id': requestId } }))).toBe('fulfill')
    expect((await sendIlp(farm.url, 'alice', packet, { headers: asyncHeaders(`${cb.url}/cb`, requestId) })).status).toBe(409)
  })

  it('Request-Ids are per account: another account may use the same one', async () => {
    const requestId = newRequestId()
    for (const from of ['alice', 'carol']) {
      const res = await sendIlp(farm.url, from, prepareTo(`${FARM_ADDRESS}.bob`, '3', knownCondition()), { headers: { 'request-id': requestId } })
      expect(codeOf(res)).toBe('fulfill')
    }
  })

  it('keeps the claim for the prepare lifetime plus a margin', async () => {
    const requestId = newRequestId()
    const prepare = prepareTo(`${FARM_ADDRESS}.bob`, '4', knownCondition(), 20_000)
    expect(codeOf(await sendIlp(farm.url, 'alice', prepare, { headers: { 'request-id': requestId } }))).toBe('fulfill')
    const key = `${farm.config.redis.keyPrefix}{acct:alice}:rid:${requestId}`
    expect(await redis.client.get(key)).toBe('sync')
    const ttl = await redis.client.pttl(key)
    expect(ttl).toBeGreaterThan(REQUEST_ID_MARGIN_MS + 15_000)
    expect(ttl).toBeLessThanOrEqual(REQUEST_ID_MARGIN_MS + 20_000)
  })
})
