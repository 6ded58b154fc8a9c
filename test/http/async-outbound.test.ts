import { randomUUID } from 'node:crypto'
import { type IlpPrepare, type IlpReject, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AccountConfigInput } from '../../src/config/schema.js'
import { account, adminGet, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, makeCondition } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { type AsyncPeer, type AsyncPeerAction, eventually, postCallback, sleep, startAsyncPeer } from '../helpers/async.js'

/**
 * Outbound async ILP-over-HTTP across two workers sharing one Redis: worker 0
 * owns the packets (they arrive there) and tells the next hop to call back at
 * worker 1 (`http.publicUrl`), which hands each reply to worker 0 over Redis
 * pub/sub. Replies that are duplicate, late or unknown get 400 and change nothing.
 */
const MAX_HOLD_MS = 2000
const CAROL_TOKEN = 'carol-token'
const downstreamReject = serializeIlpReject({
  code: 'F99',
  triggeredBy: 'test.carol.receiver',
  message: 'no thanks',
  data: Buffer.from('stream-data-must-survive'),
})

let redis: TestRedis
let owner: TestFarm // shard 0: packets arrive here
let other: TestFarm // shard 1: callbacks arrive here
let carol: AsyncPeer

function carolAction(prepare: IlpPrepare): AsyncPeerAction {
  const kind = prepare.destination.split('.')[2]
  switch (kind) {
    case 'ok':
      return { reply: fulfillKnown(prepare), delayMs: 100 }
    case 'dup':
      return { reply: fulfillKnown(prepare), delayMs: 50, copies: 2 }
    case 'late':
      return { reply: fulfillKnown(prepare), delayMs: MAX_HOLD_MS + 500 }
    case 'wrong':
      return { reply: serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 7), data: Buffer.alloc(0) }), delayMs: 50 }
    case 'reject':
      return { reply: downstreamReject, delayMs: 50 }
    case 'slow':
      return { reply: fulfillKnown(prepare), delayMs: 600 }
    case 'sync':
      return { status: 200 }
    default:
      return 'silent'
  }
}

beforeAll(async () => {
  redis = await startTestRedis()
  carol = await startAsyncPeer(CAROL_TOKEN, carolAction)
  const keyPrefix = `t${Math.random().toString(36).slice(2, 8)}:`
  const accounts: AccountConfigInput[] = [
    account('alice', { minBalance: '-1000000' }),
    account('dave', { relation: 'peer' }),
    account('carol', {
      relation: 'peer',
      incoming: { token: CAROL_TOKEN },
      outgoing: { url: carol.url, token: 'to-carol', mode: 'async' },
      routes: ['test.carol'],
    }),
  ]
  const common = { redis: { keyPrefix }, minMessageWindowMs: 500, maxHoldTimeMs: MAX_HOLD_MS }
  other = await startTestFarm(redis.url, accounts, common, { shard: 1 })
  owner = await startTestFarm(redis.url, accounts, { ...common, http: { host: '127.0.0.1', port: 0, publicUrl: other.url } }, { shard: 0 })
})

afterAll(async () => {
  await owner?.close()
  await other?.close()
  await carol?.close()
  await redis?.close()
})

async function balances(): Promise<{ alice: bigint; carol: bigint }> {
  return { alice: BigInt(await balanceOf(owner.url, 'alice')), carol: BigInt(await balanceOf(owner.url, 'carol')) }
}

async function nothingInFlight(): Promise<void> {
  expect((await adminGet<unknown[]>(owner.url, '/admin/hotset')).json).toEqual([])
  expect(await redis.client.keys(`${owner.config.redis.keyPrefix}req:*`)).toEqual([])
  expect(owner.worker.asyncReplies.inFlight).toBe(0)
}

function rejectOf(res: { status: number; packet?: { type: number; data: unknown } }): IlpReject {
  expect(res.status).toBe(200)
  expect(res.packet?.type).toBe(14)
  return res.packet!.data as IlpReject
}

const callbackUrlAt = (farm: TestFarm) => `${farm.url}/accounts/carol/ilp/callbacks`

describe('outbound async ILP-over-HTTP, reply on another worker', () => {
  it('sends Prefer, a fresh Request-Id and a Callback-Url on worker 1; the owner (worker 0) completes the packet', async () => {
    expect(owner.worker.asyncReplies.ownerId).not.toBe(other.worker.asyncReplies.ownerId)
    const before = await balances()
    const res = await sendIlp(owner.url, 'alice', prepareTo('test.carol.ok', '100', knownCondition()))
    expect(res.status).toBe(200)
    expect(res.packet?.type).toBe(13)

    const sent = carol.received.at(-1)!
    expect(sent.headers.prefer).toBe('respond-async')
    expect(sent.headers['request-id']).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
    expect(sent.headers['callback-url']).toBe(callbackUrlAt(other))
    expect(sent.headers.authorization).toBe('Bearer to-carol')
    expect(sent.prepare.amount).toBe('100')
    expect(sent.callbackStatuses).toEqual([200])

    const after = await balances()
    expect(after.alice - before.alice).toBe(-100n)
    expect(after.carol - before.carol).toBe(100n)
    await nothingInFlight()
  })

  it('a fresh Request-Id for every prepare', async () => {
    const n = carol.received.length
    await Promise.all([1, 2, 3].map(() => sendIlp(owner.url, 'alice', prepareTo('test.carol.ok', '1', knownCondition()))))
    const ids = new Set(carol.received.slice(n).map((r) => r.headers['request-id']))
    expect(ids.size).toBe(3)
  })

  it('a duplicate callback gets 400 and credits nothing twice', async () => {
    const before = await balances()
    const res = await sendIlp(owner.url, 'alice', prepareTo('test.carol.dup', '25', knownCondition()))
    expect(res.packet?.type).toBe(13)
    const sent = carol.received.at(-1)!
    await eventually(() => expect(sent.callbackStatuses).toEqual([200, 400]))
    // and again, later, on either worker
    expect(await postCallback(callbackUrlAt(other), String(sent.headers['request-id']), fulfillKnown(sent.prepare), CAROL_TOKEN)).toBe(400)
    expect(await postCallback(callbackUrlAt(owner), String(sent.headers['request-id']), fulfillKnown(sent.prepare), CAROL_TOKEN)).toBe(400)
    const after = await balances()
    expect(after.alice - before.alice).toBe(-25n)
    expect(after.carol - before.carol).toBe(25n)
    await nothingInFlight()
  })

  it('no callback before the expiry: R00, refund; the late callback gets 400 and credits nothing', async () => {
    const before = await balances()
    const started = Date.now()
    const reject = rejectOf(await sendIlp(owner.url, 'alice', prepareTo('test.carol.late', '60', knownCondition())))
    expect(reject.code).toBe('R00')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(Date.now() - started).toBeGreaterThanOrEqual(MAX_HOLD_MS - 100)
    const sent = carol.received.at(-1)!
    await eventually(() => expect(sent.callbackStatuses).toEqual([400]))
    expect(await balances()).toEqual(before)
    await nothingInFlight()
  })

  it('a next hop that never calls back: R00 at the outgoing expiry', async () => {
    const before = await balances()
    const started = Date.now()
    expect(rejectOf(await sendIlp(owner.url, 'alice', prepareTo('test.carol.silent', '5', knownCondition()))).code).toBe('R00')
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(MAX_HOLD_MS - 100)
    expect(waited).toBeLessThan(MAX_HOLD_MS + 1500)
    expect(await balances()).toEqual(before)
    await nothingInFlight()
  })

  it('a wrong fulfillment: F05, the sender refunded, the next hop not credited', async () => {
    const before = await balances()
    const reject = rejectOf(await sendIlp(owner.url, 'alice', prepareTo('test.carol.wrong', '40', makeCondition().condition)))
    expect(reject.code).toBe('F05')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(carol.received.at(-1)!.callbackStatuses).toEqual([200])
    expect(await balances()).toEqual(before)
    await nothingInFlight()
  })

  it("passes the next hop's reject through unchanged", async () => {
    const before = await balances()
    const res = await sendIlp(owner.url, 'alice', prepareTo('test.carol.reject', '3', knownCondition()))
    expect(res.status).toBe(200)
    expect(res.body.equals(downstreamReject)).toBe(true)
    expect(await balances()).toEqual(before)
  })

  it('T01 when the next hop answers anything but 202', async () => {
    const before = await balances()
    expect(rejectOf(await sendIlp(owner.url, 'alice', prepareTo('test.carol.sync', '3', knownCondition()))).code).toBe('T01')
    expect(await balances()).toEqual(before)
    await nothingInFlight()
  })

  it('callbacks with an unknown Request-Id, a bad one, a bad body or a bad token are refused and change nothing', async () => {
    const before = await balances()
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
    for (const farm of [owner, other]) {
      expect(await postCallback(callbackUrlAt(farm), randomUUID(), fulfill, CAROL_TOKEN)).toBe(400)
      expect(await postCallback(callbackUrlAt(farm), 'not-a-uuid', fulfill, CAROL_TOKEN)).toBe(400)
      expect(await postCallback(callbackUrlAt(farm), randomUUID(), Buffer.from('junk'), CAROL_TOKEN)).toBe(400)
      expect(await postCallback(callbackUrlAt(farm), randomUUID(), fulfill, 'wrong-token')).toBe(401)
      expect(await postCallback(callbackUrlAt(farm), randomUUID(), fulfill, null)).toBe(401)
    }
    expect(await balances()).toEqual(before)
    await nothingInFlight()
  })

  it("another peer cannot answer carol's request; carol's own callback still can", async () => {
    const before = await balances()
    const n = carol.received.length
    const pending = sendIlp(owner.url, 'alice', prepareTo('test.carol.slow', '8', knownCondition()))
    const sent = await eventually(() => {
      expect(carol.received.length).toBe(n + 1)
      return carol.received[n]!
    })
    const requestId = String(sent.headers['request-id'])
    const wrongFulfillment = serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 1), data: Buffer.alloc(0) })
    expect(await postCallback(`${other.url}/accounts/dave/ilp/callbacks`, requestId, wrongFulfillment, 'dave-token')).toBe(400)
    const res = await pending
    expect(res.packet?.type).toBe(13)
    expect(sent.callbackStatuses).toEqual([200])
    const after = await balances()
    expect(after.alice - before.alice).toBe(-8n)
    expect(after.carol - before.carol).toBe(8n)
  })

  it('503 while the owner is not listening (the request stays open), 400 once it has expired', async () => {
    const requestId = randomUUID()
    const key = `${owner.config.redis.keyPrefix}req:${requestId}`
    const expiresAt = Date.now() + 1000
    await redis.client.set(key, `7-000000000000|carol|${expiresAt}|alice|x`, 'PX', 1000)
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
    expect(await postCallback(callbackUrlAt(other), requestId, fulfill, CAROL_TOKEN)).toBe(503)
    expect(await redis.client.exists(key)).toBe(1)
    await sleep(expiresAt - Date.now() + 100)
    expect(await postCallback(callbackUrlAt(other), requestId, fulfill, CAROL_TOKEN)).toBe(400)
  })

  it('a callback whose hand-over fails after the request was taken (PUBLISH error) gets 503 and its retry still completes the packet', async () => {
    // worker 2 connects as a Redis user that may not SPUBLISH: its hand-over to the owner fails after GETDEL
    const user = `nopub${Math.random().toString(36).slice(2, 8)}`
    await redis.client.call('ACL', 'SETUSER', user, 'on', '>pw', '~*', '&*', '+@all', '-spublish')
    const restrictedUrl = new URL(redis.url)
    restrictedUrl.username = user
    restrictedUrl.password = 'pw'
    const common = { redis: { keyPrefix: owner.config.redis.keyPrefix }, minMessageWindowMs: 500, maxHoldTimeMs: MAX_HOLD_MS }
    const accounts: AccountConfigInput[] = [
      account('alice', { minBalance: '-1000000' }),
      account('carol', {
        relation: 'peer',
        incoming: { token: CAROL_TOKEN },
        outgoing: { url: carol.url, token: 'to-carol', mode: 'async' },
        routes: ['test.carol'],
      }),
    ]
    const restricted = await startTestFarm(restrictedUrl.href, accounts, common, { shard: 2 })
    try {
      const before = await balances()
      const n = carol.received.length
      const pending = sendIlp(owner.url, 'alice', prepareTo('test.carol.silent', '11', knownCondition()))
      const sent = await eventually(() => {
        expect(carol.received.length).toBe(n + 1)
        return carol.received[n]!
      })
      const requestId = String(sent.headers['request-id'])
      expect(await postCallback(callbackUrlAt(restricted), requestId, fulfillKnown(sent.prepare), CAROL_TOKEN)).toBe(503)
      // 503 means "retry": the request must still be open for the next hop's retry
      await redis.client.call('ACL', 'SETUSER', user, '+spublish')
      expect(await postCallback(callbackUrlAt(restricted), requestId, fulfillKnown(sent.prepare), CAROL_TOKEN)).toBe(200)
      const res = await pending
      expect(res.packet?.type).toBe(13)
      const after = await balances()
      expect(after.alice - before.alice).toBe(-11n)
      expect(after.carol - before.carol).toBe(11n)
      await nothingInFlight()
    } finally {
      await restricted.close()
      await redis.client.call('ACL', 'DELUSER', user)
    }
  })

  it('a reply that lands on the owner itself completes without pub/sub', async () => {
    // worker 1 has no http.publicUrl: its callbacks come back to itself
    const before = await balances()
    const res = await sendIlp(other.url, 'alice', prepareTo('test.carol.ok', '9', knownCondition()))
    expect(res.packet?.type).toBe(13)
    expect(carol.received.at(-1)!.headers['callback-url']).toBe(callbackUrlAt(other))
    const after = await balances()
    expect(after.alice - before.alice).toBe(-9n)
    expect(after.carol - before.carol).toBe(9n)
  })

  it('many concurrent async packets across the two workers settle exactly', async () => {
    const before = await balances()
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => sendIlp(i % 2 ? owner.url : other.url, 'alice', prepareTo('test.carol.ok', '2', knownCondition()))),
    )
    expect(results.every((r) => r.packet?.type === 13)).toBe(true)
    const after = await balances()
    expect(after.alice - before.alice).toBe(-120n)
    expect(after.carol - before.carol).toBe(120n)
    await nothingInFlight()
  })
})

describe('config', () => {
  it('an async account needs incoming.token for its callbacks', async () => {
    await expect(
      startTestFarm(redis.url, [account('x', { incoming: undefined, outgoing: { url: 'http://127.0.0.1:1/', mode: 'async' } })]),
    ).rejects.toThrow(/accounts\[0\]\.outgoing\.mode: async needs incoming\.token/)
  })

  it('http.publicUrl must be an http(s) URL', async () => {
    await expect(
      startTestFarm(redis.url, [account('x')], { http: { host: '127.0.0.1', port: 0, publicUrl: 'ftp://example.com' } }),
    ).rejects.toThrow(/http\.publicUrl/)
  })
})
