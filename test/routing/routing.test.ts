import { serializeIlpReject } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { AccountConfigInput } from '../../src/config/schema.js'
import { account, ADMIN_TOKEN, adminGet, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The address mapper end to end: real farms (in-process workers), real
 * Redis, real HTTP next hops. Two peers serve one prefix; the policy decides.
 */

let redis: TestRedis
let good: TestPeer // fulfils everything it knows
let good2: TestPeer
let flaky: TestPeer // every other packet: HTTP 503 (the farm makes it T00, a failure of the hop)
let late: TestPeer
const farms: TestFarm[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  good = await startTestPeer(fulfillKnown)
  good2 = await startTestPeer(fulfillKnown)
  let n = 0
  flaky = await startTestPeer((prepare) => (n++ % 2 === 0 ? { status: 503 } : fulfillKnown(prepare)))
  late = await startTestPeer(fulfillKnown)
})

afterAll(async () => {
  await Promise.all(farms.map((f) => f.close()))
  await Promise.all([good, good2, flaky, late].map((p) => p?.close()))
  await redis?.close()
})

const sender = () => account('alice', { minBalance: '-100000000' })
const peer = (id: string, url: string, fields: Partial<AccountConfigInput> = {}) =>
  account(id, { relation: 'peer', outgoing: { url }, ...fields })

async function farmWith(accounts: AccountConfigInput[], extra: Parameters<typeof startTestFarm>[2] = {}, shard = 0): Promise<TestFarm> {
  const farm = await startTestFarm(redis.url, accounts, extra, { shard })
  farms.push(farm)
  return farm
}

/** Sends `count` packets to `destination`, `concurrency` at a time; returns the reply codes. */
async function sendMany(farm: TestFarm, destination: string, count: number, concurrency = 4): Promise<Map<string, number>> {
  const codes = new Map<string, number>()
  let next = 0
  const lane = async () => {
    while (next < count) {
      next++
      const res = await sendIlp(farm.url, 'alice', prepareTo(destination, '10', knownCondition()))
      const p = res.packet
      const code = p?.type === 13 ? 'fulfill' : p?.type === 14 ? (p.data as { code: string }).code : `http ${res.status}`
      codes.set(code, (codes.get(code) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  return codes
}

async function admin(farm: TestFarm, method: 'PUT' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await request(`${farm.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return { status: res.statusCode, json: await res.body.json() }
}

async function eventually(check: () => Promise<boolean>, withinMs: number): Promise<number> {
  const start = Date.now()
  for (;;) {
    if (await check()) return Date.now() - start
    if (Date.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

interface RoutesView {
  policy: string
  routes: Array<{ prefix: string; candidates: Array<{ account: string; liquidity: string | null; balance: string; successes: number; failures: number; addedBy: string }> }>
}

describe('routing policies end to end (two peers for one prefix)', () => {
  it('success-rate: traffic moves to the hop that succeeds when the other fails half its packets', async () => {
    const before = { good: good.received.length, flaky: flaky.received.length }
    const farm = await farmWith([sender(), peer('good', good.url, { routes: ['test.multi'] }), peer('flaky', flaky.url, { routes: ['test.multi'] })])
    const codes = await sendMany(farm, 'test.multi.bob', 300)
    const toGood = good.received.length - before.good
    const toFlaky = flaky.received.length - before.flaky
    expect(toGood + toFlaky).toBe(300)
    expect(toFlaky).toBeGreaterThan(0) // it was tried
    expect(toGood).toBeGreaterThan(0.85 * 300) // most traffic went to the good one
    expect(codes.get('fulfill')).toBeGreaterThan(0.9 * 300)

    const { json } = await adminGet<RoutesView>(farm.url, '/admin/routes')
    expect(json.policy).toBe('success-rate')
    const multi = json.routes.find((r) => r.prefix === 'test.multi')!
    const byId = new Map(multi.candidates.map((c) => [c.account, c]))
    expect(byId.get('good')!.successes).toBe(toGood)
    expect(byId.get('good')!.failures).toBe(0)
    expect(byId.get('flaky')!.successes + byId.get('flaky')!.failures).toBe(toFlaky)
    expect(byId.get('flaky')!.failures).toBeGreaterThan(0)
    expect(byId.get('good')!.liquidity).toBeNull() // no maxBalance: unbounded
  })

  it('lowest-balance: traffic spreads over both hops and their balances stay close', async () => {
    const before = { good: good.received.length, good2: good2.received.length }
    const farm = await farmWith(
      [
        sender(),
        peer('one', good.url, { routes: ['test.multi'], maxBalance: '100000' }),
        peer('two', good2.url, { routes: ['test.multi'] }),
      ],
      { routing: { policy: 'lowest-balance' } },
    )
    const codes = await sendMany(farm, 'test.multi.bob', 200)
    expect(codes.get('fulfill')).toBe(200)
    const toOne = good.received.length - before.good
    const toTwo = good2.received.length - before.good2
    expect(toOne).toBeGreaterThan(60)
    expect(toTwo).toBeGreaterThan(60)
    const [one, two] = [BigInt(await balanceOf(farm.url, 'one')), BigInt(await balanceOf(farm.url, 'two'))]
    expect(one + two).toBe(2000n)
    const gap = one > two ? one - two : two - one
    expect(gap).toBeLessThanOrEqual(200n) // 10% of what was paid out

    const { json } = await adminGet<RoutesView>(farm.url, '/admin/routes')
    const c = json.routes.find((r) => r.prefix === 'test.multi')!.candidates.find((x) => x.account === 'one')!
    expect(c.balance).toBe(one.toString())
    expect(c.liquidity).toBe((100000n - one).toString())
  })
})

describe('routes at runtime through the admin API, shared by every worker', () => {
  let a: TestFarm
  let b: TestFarm

  beforeAll(async () => {
    const accounts = [
      sender(),
      peer('late', late.url),
      account('nourl'),
      account('wallet', { incoming: { token: 'wallet-token', callbackUrls: ['http://127.0.0.1:'] } }),
    ]
    const shared = { redis: { keyPrefix: 'shared-routes:' } }
    a = await farmWith(accounts, shared, 0)
    b = await farmWith(accounts, shared, 1)
  })

  it('validates a new route like the config', async () => {
    expect(await admin(a, 'PUT', '/admin/routes/test..bad', { account: 'late' })).toMatchObject({ status: 400 })
    expect(await admin(a, 'PUT', '/admin/routes/nowhere.x', { account: 'late' })).toMatchObject({ status: 400 })
    expect(await admin(a, 'PUT', '/admin/routes/test.late', { account: 'ghost' })).toEqual({
      status: 400,
      json: { error: 'account: route to a missing account "ghost"' },
    })
    expect(await admin(a, 'PUT', '/admin/routes/test.late', { account: 'nourl' })).toEqual({
      status: 400,
      json: { error: 'account: account "nourl" cannot be reached: no outgoing.url, no RPC URL, and no incoming.callbackUrls to register one under' },
    })
    expect(await admin(a, 'PUT', '/admin/routes/test.late', {})).toMatchObject({ status: 400 })
    expect(await admin(a, 'DELETE', '/admin/routes/test.late')).toMatchObject({ status: 404 })
    const res = await request(`${a.url}/admin/routes/test.late`, { method: 'PUT', body: '{"account":"late"}', headers: { 'content-type': 'application/json' } })
    expect(res.statusCode).toBe(401)
    await res.body.dump()
  })

  it('a next hop reached through its RPC URL takes routes, as one that may register an RPC URL does', async () => {
    // no outgoing.url, no RPC URL yet, but allowed to register one: routed (packets get T01 "receiver offline" until it does)
    expect(await admin(a, 'PUT', '/admin/routes/test.wallet', { account: 'wallet' })).toEqual({ status: 200, json: { prefix: 'test.wallet', candidates: ['wallet'] } })
    const offline = await sendIlp(a.url, 'alice', prepareTo('test.wallet.x', '10', knownCondition()))
    expect(offline.packet).toMatchObject({ type: 14, data: { code: 'T01' } })
    const set = await request(`${a.url}/rpc`, {
      method: 'POST',
      headers: { authorization: 'Bearer wallet-token', 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_setRpcUrl', params: { url: `${late.url}/rpc` } }),
    })
    expect(await set.body.json()).toMatchObject({ result: { url: `${late.url}/rpc` } })
    expect(await admin(a, 'PUT', '/admin/routes/test.wallet2', { account: 'wallet' })).toEqual({ status: 200, json: { prefix: 'test.wallet2', candidates: ['wallet'] } })
    expect(await admin(a, 'DELETE', '/admin/routes/test.wallet')).toMatchObject({ status: 200 })
    expect(await admin(a, 'DELETE', '/admin/routes/test.wallet2')).toMatchObject({ status: 200 })
  })

  it('a route added on one worker is used by the other within a second; a deleted one is no longer used', async () => {
    const codeAt = async (farm: TestFarm) => {
      const res = await sendIlp(farm.url, 'alice', prepareTo('test.late.carol', '10', knownCondition()))
      return res.packet?.type === 13 ? 'fulfill' : (res.packet?.data as { code: string }).code
    }
    expect(await codeAt(b)).toBe('F02')
    expect(await admin(a, 'PUT', '/admin/routes/test.late', { account: 'late' })).toEqual({
      status: 200,
      json: { prefix: 'test.late', candidates: ['late'] },
    })
    expect(await codeAt(a)).toBe('fulfill') // the worker that took the change has it at once
    await eventually(async () => (await codeAt(b)) === 'fulfill', 1000)

    // b's outcome counts reach Redis (batched, every second) and a's view
    await eventually(async () => {
      const { json } = await adminGet<RoutesView>(a.url, '/admin/routes')
      const c = json.routes.find((r) => r.prefix === 'test.late')?.candidates[0]
      return c !== undefined && c.account === 'late' && c.addedBy === 'admin' && c.successes >= 2
    }, 2500)

    expect(await admin(a, 'DELETE', '/admin/routes/test.late?account=late')).toEqual({ status: 200, json: { prefix: 'test.late', candidates: [] } })
    await eventually(async () => (await codeAt(b)) === 'F02', 1000)
    expect(await codeAt(a)).toBe('F02')
    const { json } = await adminGet<RoutesView>(b.url, '/admin/routes')
    expect(json.routes.map((r) => r.prefix)).not.toContain('test.late')
  })

  it('a worker started later loads the table from Redis, routes added at runtime included', async () => {
    expect((await admin(a, 'PUT', '/admin/routes/test.late2', { account: 'late' })).status).toBe(200)
    const c = await farmWith([sender(), peer('late', late.url), account('nourl')], { redis: { keyPrefix: 'shared-routes:' } }, 2)
    const res = await sendIlp(c.url, 'alice', prepareTo('test.late2.x', '10', knownCondition()))
    expect(res.packet?.type).toBe(13)
  })
})

describe('outcome classification', () => {
  it('a downstream F-code is not the hop\'s fault: counted neither way', async () => {
    const rejecter = await startTestPeer(() =>
      serializeIlpReject({ code: 'F99', triggeredBy: 'test.elsewhere', message: 'no', data: Buffer.alloc(0) }),
    )
    try {
      const farm = await farmWith([sender(), peer('rej', rejecter.url, { routes: ['test.rej'] }), peer('rej2', rejecter.url, { routes: ['test.rej'] })])
      const codes = await sendMany(farm, 'test.rej.x', 20)
      expect(codes).toEqual(new Map([['F99', 20]]))
      await farm.worker.services.routes.flushStats()
      const { json } = await adminGet<RoutesView>(farm.url, '/admin/routes')
      for (const c of json.routes.find((r) => r.prefix === 'test.rej')!.candidates) expect([c.successes, c.failures]).toEqual([0, 0])
    } finally {
      await rejecter.close()
    }
  })
})
