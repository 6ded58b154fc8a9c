import { deserializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { REQUEST_ID_MARGIN_MS } from '../../src/store/request-ids.js'
import { account, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { asyncHeaders, type CallbackServer, newRequestId, sleep, startCallbackServer } from '../helpers/async.js'

/**
 * What a caller can make the farm keep with Request-Ids and async callbacks:
 * replay keys live for the farm's hold time plus a margin (not a far-away
 * expiry), the stored Callback-Url is bounded, an account's Request-Ids and
 * pending callbacks are capped, and callbacks stop being retried soon after
 * the farm's hold time even when the prepare expires in a year.
 */
const YEAR_MS = 365 * 24 * 60 * 60 * 1000
const HOLD_MS = 1_000
const MARGIN_MS = 500

let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
const servers: CallbackServer[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  const caller = (id: string, minBalance = '-1000000') =>
    account(id, {
      minBalance,
      incoming: { token: `${id}-token`, callbackUrls: ['http://127.0.0.1:'] },
      outgoing: { url: 'http://127.0.0.1:1/ilp', token: `farm-to-${id}` },
    })
  farm = await startTestFarm(
    redis.url,
    [caller('alice'), caller('broke', '0'), caller('busy'), caller('eager'), caller('patient'), account('bob', { outgoing: { url: bob.url } })],
    {
      maxHoldTimeMs: HOLD_MS,
      async: { maxRequestIdsPerAccount: 5, maxPendingCallbacksPerAccount: 2, callbackMarginMs: MARGIN_MS },
    },
  )
})

afterAll(async () => {
  await farm?.close()
  await Promise.all([bob, ...servers].map((s) => s?.close()))
  await redis?.close()
})

async function callbackServer(answer: () => number): Promise<CallbackServer> {
  const server = await startCallbackServer(answer)
  servers.push(server)
  return server
}

const ridKey = (accountId: string, requestId: string) => `${farm.config.redis.keyPrefix}{acct:${accountId}}:rid:${requestId}`

describe('replay keys', () => {
  it('a refused packet expiring in a year keeps its Request-Id for the hold time plus a margin, not a day', async () => {
    const requestId = newRequestId()
    const res = await sendIlp(farm.url, 'broke', prepareTo(`${FARM_ADDRESS}.bob`, '10', knownCondition(), YEAR_MS), {
      headers: { 'request-id': requestId },
    })
    expect(res.status).toBe(200)
    expect(deserializeIlpReject(res.body).code).toBe('T04')
    const ttl = await redis.client.pttl(ridKey('broke', requestId))
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(HOLD_MS + REQUEST_ID_MARGIN_MS)
  })

  it('refuses a Callback-Url longer than 2,048 characters and stores nothing', async () => {
    const requestId = newRequestId()
    const long = `http://127.0.0.1:9/${'a'.repeat(16_000)}`
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), { headers: asyncHeaders(long, requestId) })
    expect(res.status).toBe(400)
    expect(res.body.toString()).toMatch(/longer than 2048/)
    expect(await redis.client.exists(ridKey('alice', requestId))).toBe(0)
  })

  it('caps the Request-Ids of one account per window: T05 sync, 429 async', async () => {
    const cb = await callbackServer(() => 200)
    for (let i = 0; i < 5; i++) {
      const res = await sendIlp(farm.url, 'eager', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), { headers: { 'request-id': newRequestId() } })
      expect(res.body[0]).toBe(13)
    }
    const sync = await sendIlp(farm.url, 'eager', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), { headers: { 'request-id': newRequestId() } })
    expect(sync.status).toBe(200)
    const reject = deserializeIlpReject(sync.body)
    expect(reject.code).toBe('T05')
    expect(reject.message).toMatch(/too many request ids/)
    const asyncRes = await sendIlp(farm.url, 'eager', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/cb`, newRequestId()),
    })
    expect(asyncRes.status).toBe(429)
    expect(asyncRes.body.toString()).toMatch(/too many request ids/)
    // other accounts are not affected
    const other = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), { headers: { 'request-id': newRequestId() } })
    expect(other.body[0]).toBe(13)
    // the count ends with its window (about the keys' lifetime), so the account may claim again then
    const ttl = await redis.client.pttl(`${farm.config.redis.keyPrefix}{acct:eager}:ridn`)
    expect(ttl).toBeGreaterThan(0)
    expect(ttl).toBeLessThanOrEqual(HOLD_MS + REQUEST_ID_MARGIN_MS)
  })
})

describe('async callbacks', () => {
  it('a callback for a prepare expiring in a year is retried until the hold time plus a margin only', async () => {
    const cb = await callbackServer(() => 500)
    const started = Date.now()
    const res = await sendIlp(farm.url, 'patient', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), YEAR_MS), {
      headers: asyncHeaders(`${cb.url}/cb`, newRequestId()),
    })
    expect(res.status).toBe(202)
    await sleep(HOLD_MS + MARGIN_MS + 2_500)
    const hits = cb.hits.length
    expect(hits).toBeGreaterThan(0)
    // the last attempt starts before the capped deadline (plus the time the packet took, on a loaded machine)
    expect(cb.hits.at(-1)!.at - started).toBeLessThan(HOLD_MS + MARGIN_MS + 1_500)
    await sleep(1_500)
    expect(cb.hits.length).toBe(hits)
    expect(farm.worker.asyncInbound.deliveries).toBe(0)
  })

  it('caps the pending callbacks of one account: 429 beyond, accepted again once they end', async () => {
    const cb = await callbackServer(() => 500)
    const send = () =>
      sendIlp(farm.url, 'busy', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), YEAR_MS), { headers: asyncHeaders(`${cb.url}/cb`, newRequestId()) })
    expect((await send()).status).toBe(202)
    expect((await send()).status).toBe(202)
    const third = await send()
    expect(third.status).toBe(429)
    expect(third.body.toString()).toMatch(/too many callbacks pending/)
    await sleep(HOLD_MS + MARGIN_MS + 1_000)
    expect((await send()).status).toBe(202)
  })
})
