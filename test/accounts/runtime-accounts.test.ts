import { Type } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { hashToken } from '../../src/accounts/registry.js'
import { account, adminGet, adminSend, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { within } from '../helpers/async.js'

/**
 * Accounts created, changed and deleted at runtime through the admin API,
 * seen by every worker: two workers on one Redis, a change made
 * through one is used through the other.
 */
let redis: TestRedis
let a: TestFarm
let b: TestFarm
let bob: TestPeer
let carolInbox: TestPeer
const prefix = `rt${Math.random().toString(36).slice(2, 8)}:`

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  carolInbox = await startTestPeer(fulfillKnown)
  const accounts = [account('alice', { minBalance: '-1000000' }), account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] })]
  a = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: prefix } }, { shard: 0 })
  b = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: prefix } }, { shard: 1 })
})

afterAll(async () => {
  await a?.close()
  await b?.close()
  await bob?.close()
  await carolInbox?.close()
  await redis?.close()
})


describe('admin API: auth', () => {
  it('refuses every account change without the admin token, and with a user token', async () => {
    for (const token of [null, 'alice-token', 'wrong']) {
      expect((await adminSend(a.url, 'POST', '/admin/accounts', account('x1'), { token })).status).toBe(401)
      expect((await adminSend(a.url, 'PUT', '/admin/accounts/alice', account('alice'), { token })).status).toBe(401)
      expect((await adminSend(a.url, 'DELETE', '/admin/accounts/alice', undefined, { token })).status).toBe(401)
      const headers = { 'idempotency-key': 'k-auth' }
      expect((await adminSend(a.url, 'POST', '/admin/accounts/alice/deposits', { amount: '5' }, { token, headers })).status).toBe(401)
      expect((await adminSend(a.url, 'POST', '/admin/accounts/alice/withdrawals', { amount: '5' }, { token, headers })).status).toBe(401)
      expect((await adminGet(a.url, '/admin/settlements', token)).status).toBe(401)
      expect((await adminGet(a.url, '/admin/inflight', token)).status).toBe(401)
    }
    expect((await adminGet(a.url, '/admin/accounts/x1')).status).toBe(404)
    expect(await balanceOf(a.url, 'alice')).toBe('0')
  })
})

describe('runtime accounts', () => {
  it('an account added on one worker sends and receives packets through the other within a second', async () => {
    const created = await adminSend<{ account: { id: string; origin: string }; token?: string }>(a.url, 'POST', '/admin/accounts', {
      id: 'carol',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      minBalance: '-500',
      incoming: { token: 'carol-token' },
      outgoing: { url: carolInbox.url },
    })
    expect(created.status).toBe(201)
    expect(created.json.account).toMatchObject({ id: 'carol', origin: 'admin' })
    expect(created.json.token).toBeUndefined() // it gave its own
    const tookMs = await within(1000, async () => {
      // carol sends through worker b: authenticated, debited
      const out = await sendIlp(b.url, 'carol', prepareTo('test.bob.x', '100', knownCondition()))
      expect(out.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    })
    expect(tookMs).toBeLessThan(1000)
    // and receives through worker b: its child route test.farm.carol exists everywhere
    const received = carolInbox.received.length
    const inbound = await sendIlp(b.url, 'alice', prepareTo('test.farm.carol', '40', knownCondition()))
    expect(inbound.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    expect(carolInbox.received.length).toBe(received + 1)
    expect(await balanceOf(b.url, 'carol')).toBe('-60')
    // its credit limit holds on every worker: -60 - 500 < -500
    const refused = await sendIlp(a.url, 'carol', prepareTo('test.bob.x', '500', knownCondition()))
    expect(refused.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'T04' } })
    expect(await balanceOf(a.url, 'carol')).toBe('-60')
  })

  it('makes a token when none is given, returns it once, and stores only its SHA-256', async () => {
    const created = await adminSend<{ token?: string }>(a.url, 'POST', '/admin/accounts', { id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6 })
    expect(created.status).toBe(201)
    const token = created.json.token!
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    const stored = (await redis.client.get(`${prefix}{acct:dave}:cfg`))!
    expect(stored).not.toContain(token)
    expect(stored).toContain(hashToken(token))
    // the config's own tokens are stored hashed too
    expect(await redis.client.get(`${prefix}{acct:alice}:cfg`)).not.toContain('alice-token')
    expect((await adminGet<{ token?: string }>(a.url, '/admin/accounts/dave')).json.token).toBeUndefined()
    await within(1000, async () => {
      const out = await sendIlp(b.url, 'dave', prepareTo('test.bob.x', '0', knownCondition()), { token })
      expect(out.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    })
    expect((await sendIlp(b.url, 'dave', prepareTo('test.bob.x', '0', knownCondition()), { token: 'dave-token' })).status).toBe(401)
  })

  it('validates like the config file, and refuses a taken id', async () => {
    const bad = await adminSend<{ error: string; issues: string[] }>(a.url, 'POST', '/admin/accounts', {
      id: 'bad id',
      relation: 'cousin',
      assetCode: 'USD',
      assetScale: 6,
      minBalance: 5,
      maxBalance: '-10',
      surprise: true,
    })
    expect(bad.status).toBe(400)
    expect(bad.json.issues).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^id: must be 1-64 characters/),
        expect.stringMatching(/^relation: /),
        expect.stringMatching(/^minBalance: must be a decimal string/),
        'surprise: unknown key',
      ]),
    )
    const belowMin = await adminSend<{ issues: string[] }>(a.url, 'POST', '/admin/accounts', account('erin', { minBalance: '0', maxBalance: '-1' }))
    expect(belowMin.status).toBe(400)
    expect(belowMin.json.issues).toEqual(['maxBalance: must not be below minBalance (0)'])
    expect((await adminSend(a.url, 'POST', '/admin/accounts', account('alice'))).status).toBe(409)
    expect((await adminSend(a.url, 'POST', '/admin/accounts', 'not an object')).status).toBe(400)
    expect((await adminGet(b.url, '/admin/accounts/erin')).status).toBe(404)
  })

  it('an update reaches every worker within a second: a lower maxPacketAmount gives F08 on the other worker', async () => {
    expect((await sendIlp(b.url, 'alice', prepareTo('test.bob.x', '1000', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    const updated = await adminSend<{ maxPacketAmount: string }>(a.url, 'PUT', '/admin/accounts/alice', {
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      minBalance: '-1000000',
      maxPacketAmount: '999',
      incoming: {}, // keeps the token
    })
    expect(updated.status).toBe(200)
    expect(updated.json.maxPacketAmount).toBe('999')
    const tookMs = await within(1000, async () => {
      const out = await sendIlp(b.url, 'alice', prepareTo('test.bob.x', '1000', knownCondition()))
      expect(out.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'F08' } })
    })
    expect(tookMs).toBeLessThan(1000)
    expect((await adminSend(a.url, 'PUT', '/admin/accounts/nobody', account('nobody'))).status).toBe(404)
    expect((await adminSend(a.url, 'PUT', '/admin/accounts/alice', account('mallory'))).status).toBe(400)
    await adminSend(a.url, 'PUT', '/admin/accounts/alice', account('alice', { minBalance: '-1000000' }))
  })

  it('a deleted account is refused on every worker, can no longer be paid, and keeps its balance', async () => {
    await adminSend(a.url, 'POST', '/admin/accounts', account('frank', { minBalance: '-100', outgoing: { url: carolInbox.url } }))
    await within(1000, async () => {
      expect((await sendIlp(b.url, 'frank', prepareTo('test.bob.x', '7', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    })
    const removed = await adminSend<{ id: string; balance: string }>(b.url, 'DELETE', '/admin/accounts/frank')
    expect(removed).toEqual({ status: 200, json: { id: 'frank', balance: '-7' } })
    await within(1000, async () => {
      expect((await sendIlp(a.url, 'frank', prepareTo('test.bob.x', '7', knownCondition()))).status).toBe(401)
      const toFrank = await sendIlp(a.url, 'alice', prepareTo('test.farm.frank', '1', knownCondition()))
      expect(toFrank.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'F02' } })
    })
    expect((await adminGet(a.url, '/admin/accounts/frank')).status).toBe(404)
    expect((await adminSend(a.url, 'DELETE', '/admin/accounts/frank')).status).toBe(404)
    expect(await redis.client.hget(`${prefix}{acct:frank}`, 'cold')).not.toBeNull() // the money is still on record
  })

  it('a config account deleted at runtime stays deleted when a worker restarts with the same config', async () => {
    // every worker of a farm runs one config: the others' accounts and routes too
    const accounts = [account('gina'), account('alice', { minBalance: '-1000000' }), account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] })]
    const c = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: prefix } }, { shard: 2 })
    try {
      expect((await adminGet(c.url, '/admin/accounts/gina')).status).toBe(200)
      expect((await adminSend(c.url, 'DELETE', '/admin/accounts/gina')).status).toBe(200)
    } finally {
      await c.close()
    }
    const again = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: prefix } }, { shard: 2 })
    try {
      expect((await adminGet(again.url, '/admin/accounts/gina')).status).toBe(404)
    } finally {
      await again.close()
    }
    // a changed entry in the file is a new intent: it comes back
    const changed = await startTestFarm(redis.url, [account('gina', { minBalance: '-5' }), ...accounts.slice(1)], { redis: { keyPrefix: prefix } }, { shard: 2 })
    try {
      expect((await adminGet<{ minBalance: string }>(changed.url, '/admin/accounts/gina')).json.minBalance).toBe('-5')
    } finally {
      await changed.close()
    }
  })
})

describe('deposits and withdrawals', () => {
  const deposit = (farm: TestFarm, id: string, amount: string, key: string) =>
    adminSend<{ balance: string; applied: boolean; error?: string }>(farm.url, 'POST', `/admin/accounts/${id}/deposits`, { amount }, { headers: { 'idempotency-key': key } })
  const withdraw = (farm: TestFarm, id: string, amount: string, key: string) =>
    adminSend<{ balance: string; applied: boolean; error?: string }>(farm.url, 'POST', `/admin/accounts/${id}/withdrawals`, { amount }, { headers: { 'idempotency-key': key } })

  it('a request retried with its key applies once, even retried at once on both workers', async () => {
    await adminSend(a.url, 'POST', '/admin/accounts', account('hank', { minBalance: '0' }))
    await within(1000, async () => expect((await adminGet(b.url, '/admin/accounts/hank')).status).toBe(200))
    const tries = await Promise.all(Array.from({ length: 20 }, (_, i) => deposit(i % 2 ? a : b, 'hank', '250', 'dep-1')))
    expect(tries.every((t) => t.status === 200 && t.json.balance === '250')).toBe(true)
    expect(tries.filter((t) => t.json.applied)).toHaveLength(1)
    expect(await balanceOf(a.url, 'hank')).toBe('250')
    // 50 different keys at once on both workers: every one applies, exactly
    await Promise.all(Array.from({ length: 50 }, (_, i) => deposit(i % 2 ? a : b, 'hank', '10', `dep-many-${i}`)))
    expect(await balanceOf(b.url, 'hank')).toBe('750')
    // the same key for another amount is a mistake, not a retry
    expect((await deposit(a, 'hank', '251', 'dep-1')).status).toBe(422)
    expect((await withdraw(a, 'hank', '250', 'dep-1')).status).toBe(422)
    expect(await balanceOf(b.url, 'hank')).toBe('750')
  })

  it('a withdrawal never takes the balance below minBalance, and money spent by packets counts', async () => {
    expect((await withdraw(a, 'hank', '751', 'wd-1')).status).toBe(422)
    expect(await balanceOf(a.url, 'hank')).toBe('750')
    // hank spends 700 through worker b (part of it leased to b's shard), then withdraws exactly the rest
    await adminSend(a.url, 'POST', '/admin/accounts', account('hank2', { minBalance: '0' }))
    for (let i = 0; i < 7; i++) {
      const spent = await sendIlp(b.url, 'hank', prepareTo('test.bob.x', '100', knownCondition()), { token: 'hank-token' })
      expect(spent.packet, JSON.stringify(spent.packet)).toMatchObject({ type: Type.TYPE_ILP_FULFILL })
    }
    expect((await withdraw(a, 'hank', '51', 'wd-2')).status).toBe(422)
    const ok = await withdraw(a, 'hank', '50', 'wd-3')
    expect(ok.json).toMatchObject({ balance: '0', applied: true })
    const refused = await sendIlp(b.url, 'hank', prepareTo('test.bob.x', '1', knownCondition()), { token: 'hank-token' })
    expect(refused.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'T04' } })
    expect(await balanceOf(a.url, 'hank')).toBe('0')
  })

  it('refuses bad amounts, a missing key and unknown accounts, changing nothing', async () => {
    for (const amount of ['0', '-5', '1.5', '', '18446744073709551616', '007']) {
      expect((await deposit(a, 'hank', amount, `bad-${amount}`)).status).toBe(400)
    }
    expect((await adminSend(a.url, 'POST', '/admin/accounts/hank/deposits', { amount: 5 }, { headers: { 'idempotency-key': 'n' } })).status).toBe(400)
    expect((await adminSend(a.url, 'POST', '/admin/accounts/hank/deposits', { amount: '5' })).status).toBe(400)
    expect((await deposit(a, 'nobody', '5', 'k')).status).toBe(404)
    expect(await balanceOf(a.url, 'hank')).toBe('0')
  })
})
