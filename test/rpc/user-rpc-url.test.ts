import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { type IlpFulfill, type IlpReject, Type } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { AccountConfigInput } from '../../src/config/schema.js'
import { freePort } from '../../src/farm/embedded-redis.js'
import { account, adminSend, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, fulfillmentStore, knownCondition, makeCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The user's own RPC URL (ilp_setRpcUrl / ilp_getRpcUrl) and the
 * delivery of incoming prepares to it as ilp_receivePrepare calls, against a
 * real Redis, two in-process workers and a JSON-RPC server on loopback.
 */

interface RpcCall {
  jsonrpc: string
  id: number
  method: string
  params: { amount: string; destination: string; executionCondition: string; expiresAt: string; data: string }
}

/** What the user's server does with a call: a result, an HTTP status, a raw body, or no answer at all. */
type UserAction = { result: unknown } | { error: { code: number; message: string } } | { status: number } | { raw: string } | 'hang'

interface UserServer {
  url: string
  calls: Array<{ call: RpcCall; headers: IncomingHttpHeaders }>
  handle: (call: RpcCall) => UserAction
  close(): Promise<void>
}

/** The user's default: fulfills a condition from fulfillmentStore, rejects any other. */
function fulfillKnownCall(call: RpcCall): UserAction {
  const fulfillment = fulfillmentStore.get(Buffer.from(call.params.executionCondition, 'base64').toString('hex'))
  if (!fulfillment) return { result: { type: 'reject', code: 'F99', triggeredBy: `${FARM_ADDRESS}.ursula`, message: 'unknown', data: '' } }
  return { result: { type: 'fulfill', fulfillment: fulfillment.toString('base64'), data: Buffer.from('thanks').toString('base64') } }
}

async function startUserServer(): Promise<UserServer> {
  const hanging = new Set<ServerResponse>()
  const user: UserServer = {
    url: '',
    calls: [],
    handle: fulfillKnownCall,
    close: async () => undefined,
  }
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const call = JSON.parse(Buffer.concat(chunks).toString('utf8')) as RpcCall
      user.calls.push({ call, headers: req.headers })
      const action = user.handle(call)
      if (action === 'hang') {
        hanging.add(res)
        return
      }
      if ('status' in action) return void res.writeHead(action.status).end()
      const body = 'raw' in action ? action.raw : JSON.stringify({ jsonrpc: '2.0', id: call.id, ...action })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  user.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/json-rpc`
  user.close = async () => {
    for (const res of hanging) res.destroy()
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
  return user
}

let redis: TestRedis
let farm: TestFarm
let other: TestFarm
let fallback: TestPeer
let user: UserServer
let keyPrefix: string

beforeAll(async () => {
  redis = await startTestRedis()
  fallback = await startTestPeer(fulfillKnown)
  user = await startUserServer()
  keyPrefix = `t${Math.random().toString(36).slice(2, 8)}:`
  const accounts: AccountConfigInput[] = [
    account('alice', { minBalance: '-10000000' }),
    // routable through its outgoing URL; an RPC URL, once set, takes its place
    // ursula's JSON-RPC endpoints in these tests are servers on loopback ports
    account('ursula', { incoming: { token: 'ursula-token', callbackUrls: ['http://127.0.0.1:', 'https://wallet.example/'] }, outgoing: { url: fallback.url, token: 'to-ursula' } }),
    // no outgoing at all: reachable only while its RPC URL is set (a tunnel user)
    account('nora', { incoming: { token: 'nora-token', callbackUrls: ['http://127.0.0.1:', 'https://*.tunnel.example/'] } }),
  ]
  farm = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 0 })
  other = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 1 })
})

afterAll(async () => {
  await farm?.close()
  await other?.close()
  await user?.close()
  await fallback?.close()
  await redis?.close()
})

beforeEach(() => {
  user.handle = fulfillKnownCall
})

interface RpcAnswer {
  result?: Record<string, unknown>
  error?: { code: number; message: string }
}

async function call(on: TestFarm, method: string, params?: unknown, token = 'ursula-token'): Promise<RpcAnswer> {
  const res = await request(`${on.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, ...(params === undefined ? {} : { params }) }),
  })
  expect(res.statusCode).toBe(200)
  return (await res.body.json()) as RpcAnswer
}

async function setUrl(url: string | null, on: TestFarm = farm): Promise<void> {
  expect((await call(on, 'ilp_setRpcUrl', { url })).result).toEqual({ url })
}

describe('ilp_setRpcUrl / ilp_getRpcUrl', () => {
  it('set, get, clear; stored in Redis under the account hash tag; bad URLs are -32602', async () => {
    expect((await call(farm, 'ilp_getRpcUrl')).result).toEqual({ url: null })
    await setUrl('https://wallet.example/rpc?x=1')
    expect((await call(farm, 'ilp_getRpcUrl')).result).toEqual({ url: 'https://wallet.example/rpc?x=1' })
    expect(await redis.client.get(`${keyPrefix}{acct:ursula}:rpcUrl`)).toBe('https://wallet.example/rpc?x=1')
    // another worker reads the same value; another account has none
    expect((await call(other, 'ilp_getRpcUrl')).result).toEqual({ url: 'https://wallet.example/rpc?x=1' })
    expect((await call(farm, 'ilp_getRpcUrl', undefined, 'alice-token')).result).toEqual({ url: null })
    for (const bad of ['ftp://wallet.example/', 'not a url', 5, 'http://user:pw@wallet.example/', `https://x.example/${'a'.repeat(2100)}`]) {
      expect((await call(farm, 'ilp_setRpcUrl', { url: bad })).error).toMatchObject({ code: -32602 })
    }
    // only under the account's allowed prefixes (incoming.callbackUrls): the farm never calls an address picked freely
    for (const elsewhere of ['https://wallet.example.evil.test/rpc', 'http://10.0.0.1/admin', 'http://localhost:6379/']) {
      expect((await call(farm, 'ilp_setRpcUrl', { url: elsewhere })).error, elsewhere).toMatchObject({ code: -32602 })
    }
    expect(await redis.client.get(`${keyPrefix}{acct:ursula}:rpcUrl`)).toBe('https://wallet.example/rpc?x=1')
    expect((await call(farm, 'ilp_setRpcUrl', {})).error).toMatchObject({ code: -32602 })
    expect((await call(farm, 'ilp_setRpcUrl', { url: 'https://a.example/', account: 'alice' })).error).toMatchObject({ code: -32602 })
    await setUrl(null)
    expect((await call(farm, 'ilp_getRpcUrl')).result).toEqual({ url: null })
    expect(await redis.client.exists(`${keyPrefix}{acct:ursula}:rpcUrl`)).toBe(0)
  })

  it('rpc.discover lists both methods and describes ilp_receivePrepare as an x- extension', async () => {
    const doc = (await call(farm, 'rpc.discover')).result as { methods: Array<{ name: string }>; 'x-calls-to-user': Array<{ name: string }> }
    expect(doc.methods.map((m) => m.name)).toEqual(expect.arrayContaining(['ilp_setRpcUrl', 'ilp_getRpcUrl']))
    expect(doc['x-calls-to-user'].map((m) => m.name)).toEqual(['ilp_receivePrepare'])
  })
})

describe('delivery to the RPC URL as ilp_receivePrepare', () => {
  it("the user's fulfill settles with exact balances; the outgoing URL is not used", async () => {
    await setUrl(user.url)
    const { fulfillment, condition } = makeCondition()
    fulfillmentStore.set(condition.toString('hex'), fulfillment)
    const aliceBefore = BigInt(await balanceOf(farm.url, 'alice'))
    const ursulaBefore = BigInt(await balanceOf(farm.url, 'ursula'))
    const calls = user.calls.length
    const prepare = prepareTo(`${FARM_ADDRESS}.ursula.inbox`, '123456', condition)
    const res = await sendIlp(farm.url, 'alice', prepare)
    expect(res.status).toBe(200)
    expect(res.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    const fulfill = res.packet!.data as IlpFulfill
    expect(fulfill.fulfillment.equals(fulfillment)).toBe(true)
    expect(fulfill.data.toString()).toBe('thanks')

    expect(user.calls).toHaveLength(calls + 1)
    const { call: got, headers } = user.calls.at(-1)!
    expect(got).toMatchObject({ jsonrpc: '2.0', method: 'ilp_receivePrepare', id: expect.any(Number) })
    expect(got.params).toEqual({
      amount: '123456',
      destination: `${FARM_ADDRESS}.ursula.inbox`,
      executionCondition: condition.toString('base64'),
      expiresAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      data: Buffer.from('hello').toString('base64'),
    })
    // the farm's expiry: the incoming one less the message window
    expect(new Date(got.params.expiresAt).getTime()).toBeLessThan(prepare.expiresAt.getTime())
    expect(headers.authorization).toBe('Bearer to-ursula')
    expect(headers['content-type']).toBe('application/json')
    expect(fallback.received).toHaveLength(0)

    expect(BigInt(await balanceOf(farm.url, 'alice'))).toBe(aliceBefore - 123456n)
    expect(BigInt(await balanceOf(farm.url, 'ursula'))).toBe(ursulaBefore + 123456n)
  })

  it('a wrong fulfillment is F05 and credits nothing', async () => {
    await setUrl(user.url)
    user.handle = () => ({ result: { type: 'fulfill', fulfillment: Buffer.alloc(32, 7).toString('base64'), data: '' } })
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const ursulaBefore = await balanceOf(farm.url, 'ursula')
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '500', knownCondition()))
    expect(res.packet?.type).toBe(Type.TYPE_ILP_REJECT)
    expect(res.packet!.data).toMatchObject({ code: 'F05', triggeredBy: FARM_ADDRESS })
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
    expect(await balanceOf(farm.url, 'ursula')).toBe(ursulaBefore)
  })

  it("the user's reject passes through as is", async () => {
    await setUrl(user.url)
    user.handle = () => ({
      result: { type: 'reject', code: 'F99', triggeredBy: `${FARM_ADDRESS}.ursula`, message: 'not today', data: Buffer.from('why').toString('base64') },
    })
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '500', knownCondition()))
    expect(res.packet?.type).toBe(Type.TYPE_ILP_REJECT)
    const reject = res.packet!.data as IlpReject
    expect(reject).toMatchObject({ code: 'F99', triggeredBy: `${FARM_ADDRESS}.ursula`, message: 'not today' })
    expect(reject.data.toString()).toBe('why')
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
  })

  it('unreachable, invalid JSON, a JSON-RPC error or a bad result: T01; 5xx: T00; the sender refunded; none of the endpoint\'s text passed on', async () => {
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const ursulaBefore = await balanceOf(farm.url, 'ursula')
    await setUrl(`http://127.0.0.1:${await freePort()}/rpc`)
    const unreachable = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '700', knownCondition()))
    expect(unreachable.packet?.type).toBe(Type.TYPE_ILP_REJECT)
    expect(unreachable.packet!.data).toMatchObject({ code: 'T01', triggeredBy: FARM_ADDRESS, message: 'no valid answer from the next hop' })

    await setUrl(user.url)
    user.handle = () => ({ status: 502 })
    const unavailable = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '700', knownCondition()))
    expect(unavailable.packet!.data).toMatchObject({ code: 'T00', triggeredBy: FARM_ADDRESS, message: 'the next hop is temporarily unavailable' })
    const actions: UserAction[] = [
      { raw: 'not json' },
      { error: { code: -32000, message: 'broken: db at 10.0.0.7 down' } },
      { result: { type: 'maybe' } },
      { result: { type: 'fulfill', fulfillment: 'c2hvcnQ=' } },
      { result: { type: 'reject', code: 'nope' } },
    ]
    for (const action of actions) {
      user.handle = () => action
      const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '700', knownCondition()))
      expect(res.packet?.type, JSON.stringify(action)).toBe(Type.TYPE_ILP_REJECT)
      expect(res.packet!.data, JSON.stringify(action)).toMatchObject({ code: 'T01', triggeredBy: FARM_ADDRESS, message: 'no valid answer from the next hop' })
    }
    // an answer to another id is no answer to this call
    user.handle = (c) => ({ raw: JSON.stringify({ jsonrpc: '2.0', id: c.id + 1000, result: { type: 'reject', code: 'F99' } }) })
    const wrongId = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '700', knownCondition()))
    expect(wrongId.packet!.data).toMatchObject({ code: 'T01' })
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
    expect(await balanceOf(farm.url, 'ursula')).toBe(ursulaBefore)
    expect(fallback.received).toHaveLength(0)
  })

  it('no answer before the expiry: R00, refunded', async () => {
    await setUrl(user.url)
    user.handle = () => 'hang'
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const started = Date.now()
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '800', knownCondition(), 2_000))
    expect(res.packet!.data).toMatchObject({ code: 'R00', triggeredBy: FARM_ADDRESS })
    expect(Date.now() - started).toBeLessThan(2_000)
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
  })

  it('a URL set through one worker is used by another within a second or two; cleared, the outgoing URL again', async () => {
    await setUrl(null)
    await expect.poll(async () => (await farm.worker.services.userRpc?.get('ursula')) ?? undefined, { timeout: 2_500, interval: 50 }).toBeUndefined()
    const set = Date.now()
    await setUrl(user.url, other)
    await expect.poll(async () => farm.worker.services.userRpc?.get('ursula'), { timeout: 2_500, interval: 50 }).toBe(user.url)
    expect(Date.now() - set).toBeLessThan(2_500)

    const calls = user.calls.length
    const ursulaBefore = BigInt(await balanceOf(farm.url, 'ursula'))
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '42', knownCondition()))
    expect(res.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    expect(user.calls).toHaveLength(calls + 1)
    expect(BigInt(await balanceOf(farm.url, 'ursula'))).toBe(ursulaBefore + 42n)

    await setUrl(null, other)
    await expect.poll(async () => (await farm.worker.services.userRpc?.get('ursula')) ?? undefined, { timeout: 2_500, interval: 50 }).toBeUndefined()
    const viaOutgoing = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.ursula`, '42', knownCondition()))
    expect(viaOutgoing.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    expect(user.calls).toHaveLength(calls + 1)
    expect(fallback.received).toHaveLength(1)
  })
})

describe('an account reachable through its RPC URL alone', () => {
  it('T01 "receiver offline" without one (F02 only for an account that does not exist); with one set through one worker, both workers deliver to it; cleared, T01 again', async () => {
    const toNora = () => prepareTo(`${FARM_ADDRESS}.nora.wallet`, '25', knownCondition())
    expect((await sendIlp(other.url, 'alice', toNora())).packet).toMatchObject({
      type: Type.TYPE_ILP_REJECT,
      data: { code: 'T01', message: expect.stringMatching(/^receiver offline: nora has no RPC URL registered/) },
    })
    // again, with nora's account now at hand in the worker (left out by the route policy, not only on loading)
    expect((await sendIlp(other.url, 'alice', toNora())).packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'T01' } })
    expect((await sendIlp(other.url, 'alice', prepareTo(`${FARM_ADDRESS}.nobody.wallet`, '25', knownCondition()))).packet).toMatchObject({
      type: Type.TYPE_ILP_REJECT,
      data: { code: 'F02', message: `no route to ${FARM_ADDRESS}.nobody.wallet` },
    })
    expect((await call(farm, 'ilp_setRpcUrl', { url: user.url }, 'nora-token')).result).toEqual({ url: user.url })
    const before = await balanceOf(farm.url, 'nora')
    expect((await sendIlp(farm.url, 'alice', toNora())).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    const start = Date.now()
    for (;;) {
      const answer = await sendIlp(other.url, 'alice', toNora())
      if (answer.packet?.type === Type.TYPE_ILP_FULFILL) break
      expect(Date.now() - start).toBeLessThan(3000)
      await new Promise((r) => setTimeout(r, 50))
    }
    expect(BigInt(await balanceOf(farm.url, 'nora')) - BigInt(before)).toBe(50n)
    expect((await call(farm, 'ilp_setRpcUrl', { url: null }, 'nora-token')).result).toEqual({ url: null })
    expect((await sendIlp(farm.url, 'alice', toNora())).packet).toMatchObject({ type: Type.TYPE_ILP_REJECT, data: { code: 'T01' } })
  })

  it('a wildcard prefix takes one host label, never more, never none', async () => {
    expect((await call(farm, 'ilp_setRpcUrl', { url: 'https://abc-12.tunnel.example/rpc' }, 'nora-token')).result).toEqual({ url: 'https://abc-12.tunnel.example/rpc' })
    for (const url of ['https://a.b.tunnel.example/rpc', 'https://tunnel.example/rpc', 'http://abc.tunnel.example/rpc', 'https://abc.tunnel.example.evil/rpc', 'https://abctunnel.example/']) {
      expect((await call(farm, 'ilp_setRpcUrl', { url }, 'nora-token')).error?.code).toBe(-32602)
    }
    await call(farm, 'ilp_setRpcUrl', { url: null }, 'nora-token')
  })
})

describe('token rotation', () => {
  /** The HTTP status of ilp_getBalance with `token` on a worker: 200 for a valid token, 401 for one that is not. */
  async function statusWith(on: TestFarm, token: string): Promise<number> {
    const res = await request(`${on.url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_getBalance' }),
    })
    await res.body.dump()
    return res.statusCode
  }

  /** Milliseconds until `token` gets `status` on the worker; fails after 1 s. */
  async function within1s(on: TestFarm, token: string, status: number): Promise<number> {
    const start = Date.now()
    while ((await statusWith(on, token)) !== status) {
      expect(Date.now() - start, `token still not ${status} after 1 s`).toBeLessThan(1000)
      await new Promise((r) => setTimeout(r, 20))
    }
    return Date.now() - start
  }

  it('ilp_rotateToken answers a new token once; the old one stops on every worker within a second; the operator can do the same', async () => {
    const created = await adminSend<{ token: string }>(farm.url, 'POST', '/admin/accounts', {
      id: 'rota',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      incoming: { callbackUrls: ['http://127.0.0.1:'] },
    })
    const first = created.json.token
    // both workers have the account and its token at hand before the change
    expect(await statusWith(farm, first)).toBe(200)
    expect(await statusWith(other, first)).toBe(200)
    expect((await call(farm, 'ilp_setRpcUrl', { url: user.url }, first)).result).toEqual({ url: user.url })

    const rotated = await call(farm, 'ilp_rotateToken', undefined, first)
    const second = (rotated.result as { token: string }).token
    expect(second).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(await statusWith(farm, first)).toBe(401)
    await within1s(other, first, 401)
    expect(await statusWith(farm, second)).toBe(200)
    await within1s(other, second, 200)
    // the rest of the account is as it was: its allowed prefixes and its RPC URL
    expect((await call(other, 'ilp_getRpcUrl', undefined, second)).result).toEqual({ url: user.url })
    expect((await call(other, 'ilp_getAccountInfo', undefined, second)).result).toMatchObject({ accountId: 'rota', allowedUrlPrefixes: ['http://127.0.0.1:'] })

    // the operator revokes it by issuing another
    const revoked = await adminSend<{ id: string; token: string }>(farm.url, 'POST', '/admin/accounts/rota/token')
    expect(revoked.status).toBe(200)
    expect(revoked.json.id).toBe('rota')
    await within1s(other, second, 401)
    expect(await statusWith(farm, second)).toBe(401)
    await within1s(other, revoked.json.token, 200)
    expect((await adminSend(farm.url, 'POST', '/admin/accounts/ghost/token')).status).toBe(404)
    // without a token the method is not available at all
    const anonymous = await request(`${farm.url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_rotateToken' }),
    })
    expect(anonymous.statusCode).toBe(401)
    await anonymous.body.dump()
  })
})
