import { Type } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { solvePow } from 'ilp-farm-client'
import { account, adminGet, adminSend, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { Keys } from '../../src/store/keys.js'
import { within } from '../helpers/async.js'

/**
 * Accounts that scale: each in its own record, workers holding only a bounded
 * cache (invalidated by messages, caught up from the change stream after a
 * lost connection), tokens found through their own index, children routed
 * by address, and ids of deleted accounts never handed to someone else.
 */
let redis: TestRedis
let a: TestFarm
let b: TestFarm
let inbox: TestPeer
const prefix = `sc${Math.random().toString(36).slice(2, 8)}:`
const CACHE = 100
const DIFFICULTY = 8

beforeAll(async () => {
  redis = await startTestRedis()
  inbox = await startTestPeer(fulfillKnown)
  const accounts = [account('alice', { minBalance: '-100000000' })]
  const extra = {
    redis: { keyPrefix: prefix },
    accountCache: { size: CACHE },
    signup: { enabled: true, difficulty: DIFFICULTY, account: { assetCode: 'USD', assetScale: 6 } },
  }
  a = await startTestFarm(redis.url, accounts, extra, { shard: 0 })
  b = await startTestFarm(redis.url, accounts, extra, { shard: 1 })
})

afterAll(async () => {
  await a?.close()
  await b?.close()
  await inbox?.close()
  await redis?.close()
})

async function rpc(url: string, method: string, params: unknown = {}, token?: string): Promise<{ status: number; json: { result?: Record<string, unknown>; error?: { code: number; message: string; data?: { reason?: string } } } }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await request(`${url}/rpc`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return { status: res.statusCode, json: (await res.body.json()) as never }
}


const kid = (id: string, fields: Record<string, unknown> = {}) => ({ id, relation: 'child', assetCode: 'USD', assetScale: 6, outgoing: { url: inbox.url }, ...fields })

describe('bounded account state', () => {
  it('a worker holds at most its cache size of accounts, however many it serves', async () => {
    const ids = Array.from({ length: 3 * CACHE }, (_, i) => `k${String(i).padStart(4, '0')}`)
    const imported = await adminSend<{ results: Array<{ outcome: string }> }>(a.url, 'POST', '/admin/accounts/import', ids.map((id) => kid(id)))
    expect(imported.status).toBe(200)
    expect(imported.json.results.every((r) => r.outcome === 'created')).toBe(true)
    // every child is paid through worker b, by address: no route per child
    for (let i = 0; i < ids.length; i += 25) {
      const outs = await Promise.all(ids.slice(i, i + 25).map((id) => sendIlp(b.url, 'alice', prepareTo(`test.farm.${id}`, '1', knownCondition()))))
      for (const out of outs) expect(out.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    }
    const held = b.worker.services.registry.held()
    expect(held.cached).toBeLessThanOrEqual(CACHE)
    expect(held.pinned).toBe(0) // alice is a child without routes: nothing pinned
    expect(await balanceOf(a.url, ids[0]!)).toBe('1')
    expect(await balanceOf(a.url, ids[ids.length - 1]!)).toBe('1')
    const routes = await adminGet<{ routes: Array<{ prefix: string }> }>(a.url, '/admin/routes')
    expect(routes.json.routes.filter((r) => r.prefix.startsWith('test.farm.'))).toEqual([])
  })

  it('a worker starting on a farm with many accounts reads none of them whole', async () => {
    // every command Redis runs while a third worker starts
    const monitor = await redis.client.monitor()
    const commands: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => commands.push(args))
    let c: TestFarm | undefined
    try {
      c = await startTestFarm(redis.url, [account('alice', { minBalance: '-100000000' })], { redis: { keyPrefix: prefix }, accountCache: { size: CACHE } }, { shard: 2 })
      await new Promise((r) => setTimeout(r, 200))
      const mine = commands.filter((args) => args.some((a) => a.startsWith(prefix)))
      // account records read or written (the other workers' packets still settling touch balances, not records)
      const named = new Set(mine.flatMap((args) => args.filter((a) => a.startsWith(`${prefix}{acct:`) && /:(cfg|rpcUrl)$/.test(a))))
      // the config's one account, not the 300 others
      expect([...named]).toEqual([`${prefix}{acct:alice}:cfg`])
      // nothing walks the keyspace or an account index (the hotSet's scan is of packets in flight)
      const command = (args: string[]) => args[0]!.toLowerCase()
      expect(mine.filter((args) => ['scan', 'keys'].includes(command(args)))).toEqual([])
      expect(mine.filter((args) => ['zrange', 'zrangebylex', 'hscan', 'sscan', 'hgetall', 'smembers'].includes(command(args)) && /accounts(?!:pinned)/.test(args[1]!))).toEqual([])
      // and it serves any account on first use, one read away
      const out = await sendIlp(c.url, 'alice', prepareTo('test.farm.k0150', '1', knownCondition()))
      expect(out.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    } finally {
      monitor.disconnect()
      await c?.close()
    }
  })

  it('a change made while a worker\'s subscriber was cut off is caught up from the change stream', async () => {
    // b has k0007 at hand
    expect((await sendIlp(b.url, 'k0007', prepareTo('test.farm.k0008', '0', knownCondition()), { token: null })).status).toBe(401)
    await adminSend(a.url, 'PUT', '/admin/accounts/k0007', kid('k0007', { incoming: { token: 'k7-token' }, minBalance: '-1000' }))
    expect((await sendIlp(b.url, 'k0007', prepareTo('test.farm.k0008', '5', knownCondition()), { token: 'k7-token' })).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    // cut every subscriber off, and change the account at once: b's message is lost
    await redis.client.client('KILL', 'TYPE', 'pubsub')
    await adminSend(a.url, 'PUT', '/admin/accounts/k0007', kid('k0007', { incoming: { token: 'k7-token' }, minBalance: '-1000', maxPacketAmount: '3' }))
    const tookMs = await within(3000, async () => {
      const out = await sendIlp(b.url, 'k0007', prepareTo('test.farm.k0008', '5', knownCondition()), { token: 'k7-token' })
      expect(out.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'F08' } })
    })
    expect(tookMs).toBeLessThan(3000)
  })

  it('a bearer token finds its account through the token index; a replaced token stops working everywhere', async () => {
    const created = await adminSend<{ token: string }>(a.url, 'POST', '/admin/accounts', { id: 'tokey', relation: 'child', assetCode: 'USD', assetScale: 6 })
    const token = created.json.token
    expect((await rpc(b.url, 'ilp_getAccountInfo', {}, token)).json.result).toMatchObject({ accountId: 'tokey' })
    expect(await redis.client.get(`${prefix}{tok:${(await import('../../src/accounts/registry.js')).hashToken(token)}}`)).toBe('tokey')
    await adminSend(a.url, 'PUT', '/admin/accounts/tokey', { id: 'tokey', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 'new-tokey-token' } })
    await within(1000, async () => expect((await rpc(b.url, 'ilp_getAccountInfo', {}, token)).status).toBe(401))
    expect((await rpc(b.url, 'ilp_getAccountInfo', {}, 'new-tokey-token')).json.result).toMatchObject({ accountId: 'tokey' })
    // two accounts never share a token
    const clash = await adminSend<{ error: string }>(a.url, 'POST', '/admin/accounts', { id: 'clash', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 'new-tokey-token' } })
    expect(clash.status).toBe(409)
    expect(clash.json.error).toMatch(/another account's token/)
  })
})

describe('bulk import', () => {
  it('writes a batch at once, one line at a time where a key is already taken: a stale token entry is taken over, a live one refused', async () => {
    const { hashToken } = await import('../../src/accounts/registry.js')
    // a token index entry left pointing at an id with no account, and a token a live account holds
    await redis.client.set(`${prefix}{tok:${hashToken('stale-token')}}`, 'ghost')
    await adminSend(a.url, 'POST', '/admin/accounts', { id: 'holder', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 'held-token' } })
    const lines = [
      kid('imp1', { incoming: { token: 'imp1-token' } }),
      kid('imp2', { incoming: { token: 'stale-token' } }),
      kid('imp3', { incoming: { token: 'held-token' } }),
      kid('imp4', { incoming: { token: 'imp4-token' } }),
    ]
    const res = await adminSend<{ results: Array<{ outcome: string; id: string }> }>(a.url, 'POST', '/admin/accounts/import', lines)
    expect(res.json.results.map((r) => [r.id, r.outcome])).toEqual([['imp1', 'created'], ['imp2', 'created'], ['imp3', 'token-taken'], ['imp4', 'created']])
    expect(await redis.client.get(`${prefix}{tok:${hashToken('stale-token')}}`)).toBe('imp2')
    expect((await rpc(b.url, 'ilp_getAccountInfo', {}, 'stale-token')).json.result).toMatchObject({ accountId: 'imp2' })
    expect((await rpc(b.url, 'ilp_getAccountInfo', {}, 'held-token')).json.result).toMatchObject({ accountId: 'holder' })
    expect((await adminGet(a.url, '/admin/accounts/imp3')).status).toBe(404)
    // the same file again changes nothing
    const again = await adminSend<{ results: Array<{ outcome: string }> }>(a.url, 'POST', '/admin/accounts/import', lines)
    expect(again.json.results.map((r) => r.outcome)).toEqual(['unchanged', 'unchanged', 'token-taken', 'unchanged'])
  })
})

describe('ids of deleted accounts', () => {
  it('are not taken by sign-up, ticket or the admin API, and the balance never passes silently', async () => {
    await adminSend(a.url, 'POST', '/admin/accounts', { id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6 })
    const deposit = await adminSend(a.url, 'POST', '/admin/accounts/dave/deposits', { amount: '5000000' }, { headers: { 'idempotency-key': 'dave-1' } })
    expect(deposit.status).toBe(200)
    expect((await adminSend(a.url, 'DELETE', '/admin/accounts/dave')).status).toBe(200)

    // open sign-up under the deleted id
    const challenge = (await rpc(b.url, 'ilp_getSignupChallenge')).json.result as { challenge: string; difficulty: number }
    const nonce = await solvePow(challenge.challenge, challenge.difficulty, { threads: 1 })
    const signup = await rpc(b.url, 'ilp_signUp', { challenge: challenge.challenge, nonce, id: 'dave' })
    expect(signup.json.error?.data?.reason).toBe('id-taken')
    // the challenge was not spent on the refusal: the same solution still works for a free id
    expect((await rpc(b.url, 'ilp_signUp', { challenge: challenge.challenge, nonce, id: 'dora' })).json.result).toMatchObject({ id: 'dora' })

    // a ticket redeemed under it
    const ticket = await adminSend<{ ticket: string }>(a.url, 'POST', '/admin/tickets', { account: { relation: 'child', assetCode: 'USD', assetScale: 6 } })
    expect((await rpc(b.url, 'ilp_redeemTicket', { ticket: ticket.json.ticket, id: 'dave' })).json.error?.data?.reason).toBe('id-taken')
    // the ticket is still good for another id
    expect((await rpc(b.url, 'ilp_redeemTicket', { ticket: ticket.json.ticket, id: 'dana' })).json.result).toMatchObject({ id: 'dana' })

    // the admin API, without asking for it
    const plain = await adminSend<{ error: string }>(a.url, 'POST', '/admin/accounts', { id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6 })
    expect(plain.status).toBe(409)
    expect(plain.json.error).toMatch(/deleted account/)
    const imported = await adminSend<{ results: Array<{ outcome: string }> }>(a.url, 'POST', '/admin/accounts/import', [{ id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6 }])
    expect(imported.json.results[0]!.outcome).toBe('deleted')
    // nobody can spend it meanwhile
    expect((await adminGet(a.url, '/admin/accounts/dave')).status).toBe(404)
    expect((await redis.client.zscore(new Keys(prefix).accountIds, 'dave'))).toBeNull()

    // asked for explicitly: the answer says what the new holder takes over
    const reused = await adminSend<{ inherited: { balance: string }; account: { balance: string } }>(
      a.url,
      'POST',
      '/admin/accounts?reuseDeletedId=true',
      { id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6 },
    )
    expect(reused.status).toBe(201)
    expect(reused.json.inherited.balance).toBe('5000000')
    expect(reused.json.account.balance).toBe('5000000')
  })

  it('a deleted account\'s RPC URL is cleared with it', async () => {
    const created = await adminSend<{ token: string }>(a.url, 'POST', '/admin/accounts', {
      id: 'rita',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      incoming: { callbackUrls: ['http://127.0.0.1:'] },
    })
    const set = await rpc(a.url, 'ilp_setRpcUrl', { url: `${inbox.url}/rpc` }, created.json.token)
    expect(set.json.error).toBeUndefined()
    expect(await redis.client.get(`${prefix}{acct:rita}:rpcUrl`)).toBe(`${inbox.url}/rpc`)
    await adminSend(a.url, 'DELETE', '/admin/accounts/rita')
    expect(await redis.client.get(`${prefix}{acct:rita}:rpcUrl`)).toBeNull()
    const out = await sendIlp(b.url, 'alice', prepareTo('test.farm.rita', '1', knownCondition()))
    expect(out.packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'F02' } })
  })
})

describe('a farm from before per-account records', () => {
  it('moves the accounts of the old hash to their own records at start, tokens, tombstones and all', async () => {
    const old = `old${Math.random().toString(36).slice(2, 8)}:`
    const { hashToken } = await import('../../src/accounts/registry.js')
    const olga = { id: 'olga', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000', routes: [], sendRoutes: false, receiveRoutes: false, incoming: { tokenHash: hashToken('olga-token') } }
    await redis.client.hset(`${old}accounts`, {
      olga: JSON.stringify({ account: olga, origin: 'admin', updatedAt: 1 }),
      oscar: JSON.stringify({ origin: 'config', configDigest: 'x', deleted: true, updatedAt: 1 }),
    })
    const c = await startTestFarm(redis.url, [account('alice', { minBalance: '-100000000' })], { redis: { keyPrefix: old } })
    try {
      expect(await redis.client.exists(`${old}accounts`)).toBe(0)
      expect(await redis.client.hlen(`${old}accounts:migrated`)).toBe(2)
      const out = await sendIlp(c.url, 'olga', prepareTo('test.farm.alice', '0', knownCondition()), { token: 'olga-token' })
      expect(out.status).toBe(200)
      expect((await rpc(c.url, 'ilp_getAccountInfo', {}, 'olga-token')).json.result).toMatchObject({ accountId: 'olga' })
      expect((await adminSend(c.url, 'POST', '/admin/accounts', { id: 'oscar', relation: 'child', assetCode: 'USD', assetScale: 6 })).status).toBe(409)
      const page = await adminGet<{ accounts: Array<{ id: string }> }>(c.url, '/admin/accounts')
      expect(page.json.accounts.map((x) => x.id)).toEqual(['alice', 'olga'])
    } finally {
      await c.close()
    }
  })
})
