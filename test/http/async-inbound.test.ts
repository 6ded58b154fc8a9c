import { deserializeIlpFulfill, deserializeIlpReject, serializeIlpPrepare } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { allowedCallbackPrefixes, callbackUrlAllowed } from '../../src/async/callback-policy.js'
import { parseConfig } from '../../src/config/load.js'
import { Coordination } from '../../src/store/coordination.js'
import { Ledger } from '../../src/store/ledger.js'
import { account, adminGet, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import {
  asyncHeaders,
  type CallbackAnswer,
  type CallbackServer,
  eventually,
  newRequestId,
  sleep,
  startCallbackServer,
} from '../helpers/async.js'

/**
 * Inbound async ILP-over-HTTP (RFC 35 draft 3): 202 at once, the Fulfill or
 * Reject POSTed to the caller's Callback-Url with the same Request-Id, retried
 * on 5xx or no answer until the prepare expires, never after a 2xx or 4xx.
 */
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer // fulfils at once
let slow: TestPeer // fulfils after 800 ms
const servers: CallbackServer[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  slow = await startTestPeer(async (prepare) => {
    await sleep(800)
    return fulfillKnown(prepare)
  })
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', {
        minBalance: '-1000000',
        // its callbacks are test servers on loopback ports
        incoming: { token: 'alice-token', callbackUrls: ['http://127.0.0.1:'] },
        outgoing: { url: 'http://127.0.0.1:1/ilp', token: 'farm-to-alice' },
      }),
      account('bob', { outgoing: { url: bob.url } }),
      account('slow', { relation: 'peer', outgoing: { url: slow.url }, routes: ['test.slow'] }),
    ],
    // a quick sweeper, for the crashed-owner test
    { farm: { heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600, sweepIntervalMs: 100 } },
  )
})

afterAll(async () => {
  await farm?.close()
  await Promise.all([bob, slow, ...servers].map((s) => s?.close()))
  await redis?.close()
})

async function callbackServer(answer: (hitNumber: number) => CallbackAnswer): Promise<CallbackServer> {
  const server = await startCallbackServer(answer)
  servers.push(server)
  return server
}

async function balances(): Promise<{ alice: bigint; bob: bigint; slow: bigint }> {
  const [alice, bob, slow] = await Promise.all(['alice', 'bob', 'slow'].map(async (id) => BigInt(await balanceOf(farm.url, id))))
  return { alice: alice!, bob: bob!, slow: slow! }
}

async function hotSetIsEmpty(): Promise<void> {
  expect((await adminGet<unknown[]>(farm.url, '/admin/hotset')).json).toEqual([])
}

describe('inbound async ILP-over-HTTP', () => {
  it('answers 202 at once and POSTs the Fulfill to the Callback-Url with the same Request-Id', async () => {
    const cb = await callbackServer(() => 200)
    const before = await balances()
    const requestId = newRequestId()
    const started = Date.now()
    const res = await sendIlp(farm.url, 'alice', prepareTo('test.slow.x', '100', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/ilp/callback`, requestId),
    })
    expect(res.status).toBe(202)
    expect(res.body.length).toBe(0)
    // the next hop takes 800 ms: the 202 did not wait for it
    expect(Date.now() - started).toBeLessThan(600)
    expect(cb.hits).toHaveLength(0)

    await eventually(() => expect(cb.hits).toHaveLength(1))
    const hit = cb.hits[0]!
    expect(hit.headers['request-id']).toBe(requestId)
    expect(hit.headers['content-type']).toBe('application/octet-stream')
    expect(hit.headers.authorization).toBe('Bearer farm-to-alice')
    expect(hit.body[0]).toBe(13)
    expect(deserializeIlpFulfill(hit.body).data.toString()).toBe('paid')
    expect(hit.at - started).toBeGreaterThanOrEqual(700)

    const after = await balances()
    expect(after.alice - before.alice).toBe(-100n)
    expect(after.slow - before.slow).toBe(100n)
    await hotSetIsEmpty()
  })

  it('sends the reject of a packet the farm refuses to the callback too', async () => {
    const cb = await callbackServer(() => 204)
    const before = await balances()
    const requestId = newRequestId()
    const res = await sendIlp(farm.url, 'alice', prepareTo('g.nowhere', '5', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/cb`, requestId),
    })
    expect(res.status).toBe(202)
    await eventually(() => expect(cb.hits).toHaveLength(1))
    const reject = deserializeIlpReject(cb.hits[0]!.body)
    expect(reject.code).toBe('F02')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(cb.hits[0]!.headers['request-id']).toBe(requestId)
    expect(await balances()).toEqual(before)
  })

  it('retries a callback that answers 503 twice, then delivers it once', async () => {
    const cb = await callbackServer((n) => (n <= 2 ? 503 : 200))
    const before = await balances()
    const requestId = newRequestId()
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '40', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/cb`, requestId),
    })
    expect(res.status).toBe(202)
    await eventually(() => expect(cb.hits).toHaveLength(3))
    expect(cb.hits.map((h) => h.answered)).toEqual([503, 503, 200])
    for (const hit of cb.hits) {
      expect(hit.headers['request-id']).toBe(requestId)
      expect(hit.body.equals(cb.hits[0]!.body)).toBe(true)
      expect(hit.body[0]).toBe(13)
    }
    await eventually(() => expect(farm.worker.asyncInbound.deliveries).toBe(0))
    await sleep(500)
    expect(cb.hits).toHaveLength(3)
    const after = await balances()
    expect(after.alice - before.alice).toBe(-40n)
    expect(after.bob - before.bob).toBe(40n)
  })

  it('does not retry a callback that answers 400', async () => {
    const cb = await callbackServer(() => 400)
    const before = await balances()
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '7', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/cb`, newRequestId()),
    })
    expect(res.status).toBe(202)
    await eventually(() => expect(cb.hits).toHaveLength(1))
    await eventually(() => expect(farm.worker.asyncInbound.deliveries).toBe(0))
    await sleep(1000)
    expect(cb.hits).toHaveLength(1)
    // the packet itself went through; only its callback was refused
    const after = await balances()
    expect(after.alice - before.alice).toBe(-7n)
    expect(after.bob - before.bob).toBe(7n)
  })

  it('retries an unreachable callback until the prepare expires, then stops', async () => {
    const cb = await callbackServer(() => 'destroy') // accepts, then drops the connection: no answer
    const before = await balances()
    const prepare = prepareTo(`${FARM_ADDRESS}.bob`, '9', knownCondition(), 3000)
    const expiresAt = prepare.expiresAt.getTime()
    const res = await sendIlp(farm.url, 'alice', prepare, { headers: asyncHeaders(`${cb.url}/cb`, newRequestId()) })
    expect(res.status).toBe(202)
    // and a callback URL where nothing listens at all
    const refused = prepareTo(`${FARM_ADDRESS}.bob`, '11', knownCondition(), 3000)
    expect((await sendIlp(farm.url, 'alice', refused, { headers: asyncHeaders('http://127.0.0.1:1/cb', newRequestId()) })).status).toBe(202)

    await eventually(() => {
      expect(cb.hits.length).toBeGreaterThan(0)
      expect(farm.worker.asyncInbound.inFlight).toBe(0) // both packets are past the pipeline...
      expect(farm.worker.asyncInbound.deliveries).toBe(0) // ...and their callbacks gave up
    }, 10_000)
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt - 1100) // gave up only when the next pause would pass the expiry
    const count = cb.hits.length
    expect(count).toBeGreaterThanOrEqual(4)
    for (const hit of cb.hits) expect(hit.at).toBeLessThanOrEqual(expiresAt)
    await sleep(1000)
    expect(cb.hits.length).toBe(count)
    const after = await balances()
    expect(after.alice - before.alice).toBe(-20n)
    expect(after.bob - before.bob).toBe(20n)
  })

  it('400 for a missing or bad Callback-Url or Request-Id, 401 before anything else; nothing moves', async () => {
    const cb = await callbackServer(() => 200)
    const before = await balances()
    const body = () => serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '3', knownCondition()))
    const good = asyncHeaders(`${cb.url}/cb`, newRequestId())
    const cases: Array<Record<string, string>> = [
      { prefer: 'respond-async', 'request-id': newRequestId() }, // no Callback-Url
      { ...good, 'callback-url': 'ftp://127.0.0.1/cb' },
      { ...good, 'callback-url': 'not a url' },
      { ...good, 'callback-url': '/relative/path' },
      { prefer: 'respond-async', 'callback-url': `${cb.url}/cb` }, // no Request-Id
      { ...good, 'request-id': 'not-a-uuid' },
      { ...good, 'request-id': `${newRequestId()}x` },
      { 'callback-url': `${cb.url}/cb`, 'request-id': '12345' }, // Callback-Url without Prefer is async too
    ]
    for (const headers of cases) {
      const res = await sendIlp(farm.url, 'alice', body(), { headers })
      expect(res.status, JSON.stringify(headers)).toBe(400)
    }
    expect((await sendIlp(farm.url, 'alice', Buffer.from('not a packet'), { headers: good })).status).toBe(400)
    expect((await sendIlp(farm.url, 'alice', body(), { headers: good, token: 'wrong' })).status).toBe(401)
    // sync mode: a Request-Id, when there is one, must be a UUID as well
    expect((await sendIlp(farm.url, 'alice', body(), { headers: { 'request-id': 'abc' } })).status).toBe(400)
    await sleep(300)
    expect(cb.hits).toHaveLength(0)
    expect(await balances()).toEqual(before)
    await hotSetIsEmpty()
  })

  it('403 for a Callback-Url outside the account\'s allowed prefixes (default: its outgoing.url origin); nothing moves', async () => {
    const cb = await callbackServer(() => 200)
    const before = await balances()
    const body = () => serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '3', knownCondition()))
    // alice allows http://127.0.0.1:* only
    for (const url of ['http://localhost:9/cb', 'https://127.0.0.1.evil.example/cb', 'http://10.0.0.1/admin']) {
      expect((await sendIlp(farm.url, 'alice', body(), { headers: asyncHeaders(url, newRequestId()) })).status, url).toBe(403)
    }
    // bob has no callbackUrls: only the origin of its outgoing.url (the test peer) is allowed
    expect((await sendIlp(farm.url, 'bob', body(), { headers: asyncHeaders(`${cb.url}/cb`, newRequestId()) })).status).toBe(403)
    const bobConfig = farm.config.accounts.find((a) => a.id === 'bob')!
    expect(allowedCallbackPrefixes(bobConfig)).toEqual([`${new URL(bob.url).origin}/`])
    expect(callbackUrlAllowed(bobConfig, `${new URL(bob.url).origin}/callbacks/1`)).toBe(true)
    expect(allowedCallbackPrefixes(farm.config.accounts.find((a) => a.id === 'slow')!)).toEqual([`${new URL(slow.url).origin}/`])
    await sleep(300)
    expect(cb.hits).toHaveLength(0)
    expect((await balances()).alice).toBe(before.alice)
  })

  it('refuses a callbackUrls prefix that does not end its host (config)', () => {
    expect(() =>
      parseConfig(
        { ilpAddress: 'test.farm', accounts: [account('z', { incoming: { token: 't', callbackUrls: ['http://127.0.0.1'] } })] },
        'test',
        {},
      ),
    ).toThrow(/accounts\[0\]\.incoming\.callbackUrls\[0\]: must be an http\(s\) URL prefix/)
  })

  it("the sweeper's refund hook POSTs an R00 reject to an async packet's callback, and ignores other entries", async () => {
    const cb = await callbackServer(() => 200)
    const requestId = newRequestId()
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '2', knownCondition()), {
      headers: asyncHeaders(`${cb.url}/cb`, requestId),
    })
    expect(res.status).toBe(202)
    await eventually(() => expect(cb.hits).toHaveLength(1))
    // as if this packet's owner had died and the sweeper had refunded its entry
    const outcome = await farm.worker.asyncInbound.rejectSweptAsyncPacket({ incomingAccount: 'alice', packetId: requestId })
    expect(outcome).toBe('delivered')
    expect(cb.hits).toHaveLength(2)
    const reject = deserializeIlpReject(cb.hits[1]!.body)
    expect(reject.code).toBe('R00')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(cb.hits[1]!.headers['request-id']).toBe(requestId)
    expect(cb.hits[1]!.headers.authorization).toBe('Bearer farm-to-alice')
    // sync packets (hash ids, or a sync Request-Id) and unknown ids: nothing to send
    const syncId = newRequestId()
    await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), { headers: { 'request-id': syncId } })
    for (const packetId of ['c29tZS1oYXNoLWlk', syncId, newRequestId()]) {
      expect(await farm.worker.asyncInbound.rejectSweptAsyncPacket({ incomingAccount: 'alice', packetId })).toBeUndefined()
    }
    expect(await farm.worker.asyncInbound.rejectSweptAsyncPacket({ incomingAccount: 'nobody', packetId: requestId })).toBeUndefined()
    expect(cb.hits).toHaveLength(2)
  })

  it('an async packet whose owner died: the sweeper refunds it and its reject reaches the Callback-Url', async () => {
    const cb = await callbackServer(() => 200)
    const before = await balances()
    const requestId = newRequestId()
    // What a worker that crashed mid-packet leaves behind: the Request-Id claimed with its
    // Callback-Url, and a hotSet entry under its own boot id; its heartbeat (shard 7) then runs out.
    const expiresAtMs = Date.now() + 300
    const ledger = farm.worker.services.ledger
    const now = Date.now()
    await new Coordination(redis.client, ledger.keys).beat({ shard: 7, bootId: '7-crashed', pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 300 })
    const crashed = new Ledger(redis.client, ledger.keys.prefix, { bootId: '7-crashed' })
    expect(await farm.worker.services.requestIds.claim('alice', requestId, expiresAtMs, `${cb.url}/cb`)).toBe(true)
    const reserved = await crashed.prepare({
      incomingAccount: 'alice',
      packetId: requestId,
      shard: 7,
      inAmount: '13',
      outgoingAccount: 'bob',
      outAmount: '13',
      expiresAtMs,
      minBalance: '-1000000',
      maxBalance: undefined,
    })
    expect(reserved).toBe('ok')
    expect((await balances()).alice - before.alice).toBe(-13n)

    await eventually(() => expect(cb.hits).toHaveLength(1), 15_000)
    const reject = deserializeIlpReject(cb.hits[0]!.body)
    expect(reject.code).toBe('R00')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(cb.hits[0]!.headers['request-id']).toBe(requestId)
    expect(cb.hits[0]!.headers.authorization).toBe('Bearer farm-to-alice')
    expect(await balances()).toEqual(before)
    await hotSetIsEmpty()
  })

  it('accepts Prefer with other preferences and any UUID case', async () => {
    const cb = await callbackServer(() => 200)
    const requestId = newRequestId().toUpperCase()
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()), {
      headers: { ...asyncHeaders(`${cb.url}/cb?x=1`, requestId), prefer: 'return=minimal, respond-async; wait=5' },
    })
    expect(res.status).toBe(202)
    await eventually(() => expect(cb.hits).toHaveLength(1))
    expect(cb.hits[0]!.headers['request-id']).toBe(requestId)
    expect(cb.hits[0]!.body[0]).toBe(13)
  })
})
