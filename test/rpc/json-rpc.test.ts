import { serializeIlpReject } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { rpcMethods } from '../../src/rpc/methods.js'
import { account, adminGet, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, fulfillmentStore, knownCondition, makeCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** JSON-RPC 2.0 at POST /rpc: conformance, auth, and every method against a real farm, Redis and next hops. */
let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let carol: TestPeer

interface RpcAnswer {
  jsonrpc: string
  id: string | number | null
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: { ilpCode: string } }
}

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  carol = await startTestPeer(() => serializeIlpReject({ code: 'F99', triggeredBy: 'test.carol', message: 'no thanks', data: Buffer.from('why') }))
  farm = await startTestFarm(redis.url, [
    account('alice', { minBalance: '-1000000', maxPacketAmount: '500000' }),
    account('bob', { outgoing: { url: bob.url } }),
    account('carol', { outgoing: { url: carol.url } }),
    account('dave', { relation: 'peer' }),
    account('poor'),
    account('eur', { assetCode: 'EUR', outgoing: { url: bob.url } }),
  ])
})

afterAll(async () => {
  await farm?.close()
  await bob?.close()
  await carol?.close()
  await redis?.close()
})

async function post(body: string, token: string | null = 'alice-token', contentType = 'application/json'): Promise<{ status: number; text: string }> {
  const headers: Record<string, string> = { 'content-type': contentType }
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await request(`${farm.url}/rpc`, { method: 'POST', headers, body })
  return { status: res.statusCode, text: await res.body.text() }
}

async function call(method: string, params?: unknown, token = 'alice-token'): Promise<RpcAnswer> {
  const res = await post(JSON.stringify({ jsonrpc: '2.0', id: 7, method, ...(params === undefined ? {} : { params }) }), token)
  expect(res.status).toBe(200)
  const answer = JSON.parse(res.text) as RpcAnswer
  expect(answer.jsonrpc).toBe('2.0')
  expect(answer.id).toBe(7)
  return answer
}

const inTenSeconds = () => new Date(Date.now() + 10_000).toISOString()

describe('POST /rpc: protocol', () => {
  it('-32700 for a body that is not JSON, with id null', async () => {
    for (const body of ['{"jsonrpc": "2.0", "method": "foo", "params": "bar', '', 'nope']) {
      const res = await post(body)
      expect(res.status).toBe(200)
      expect(JSON.parse(res.text)).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.any(String) } })
    }
    // a batch that is not valid JSON is one parse error
    const batch = await post('[{"jsonrpc": "2.0", "method": "ilp_getBalance", "id": 1},{"jsonrpc": "2.0", "method"]')
    expect(JSON.parse(batch.text)).toMatchObject({ id: null, error: { code: -32700 } })
  })

  it('-32600 for requests that are not JSON-RPC 2.0 request objects', async () => {
    const cases: Array<[unknown, string | number | null]> = [
      [1, null],
      ['ilp_getBalance', null],
      [{ jsonrpc: '2.0', method: 1, params: 'bar' }, null],
      [{ jsonrpc: '1.0', method: 'ilp_getBalance', id: 3 }, 3],
      [{ method: 'ilp_getBalance', id: 'x' }, 'x'],
      [{ jsonrpc: '2.0', method: 'ilp_getBalance', id: { a: 1 } }, null],
      [{ jsonrpc: '2.0', method: 'ilp_getBalance', params: 5, id: 4 }, 4],
    ]
    for (const [body, id] of cases) {
      const res = await post(JSON.stringify(body))
      expect(res.status).toBe(200)
      expect(JSON.parse(res.text)).toEqual({ jsonrpc: '2.0', id, error: { code: -32600, message: expect.any(String) } })
    }
    const empty = await post('[]')
    expect(JSON.parse(empty.text)).toMatchObject({ id: null, error: { code: -32600 } })
  })

  it('-32601 for an unknown method; -32602 for bad params', async () => {
    expect((await call('ilp_noSuchMethod')).error).toMatchObject({ code: -32601 })
    expect((await call('ilp_getBalance', { unexpected: 1 })).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_getBalance', ['positional'])).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_getBalance', [])).result).toBeDefined()
    expect((await call('ilp_quote', {})).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob` })).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_quote', { destination: 'not an address', sourceAmount: '1' })).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob`, sourceAmount: 10 })).error).toMatchObject({ code: -32602 })
    const good = { amount: '10', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() }
    for (const bad of [
      { ...good, amount: '-1' },
      { ...good, amount: '18446744073709551616' },
      { ...good, executionCondition: 'abcd' },
      { ...good, expiresAt: 'tomorrow' },
      { ...good, data: '***' },
      { ...good, data: Buffer.alloc(32768).toString('base64') },
      { ...good, destination: undefined },
    ]) {
      expect((await call('ilp_sendPrepare', bad)).error).toMatchObject({ code: -32602 })
    }
    expect(bob.received).toHaveLength(0)
    expect(await balanceOf(farm.url, 'alice')).toBe('0')
  })

  it('notifications get no response: 204 for one, for a batch of them; executed all the same', async () => {
    const one = await post(JSON.stringify({ jsonrpc: '2.0', method: 'ilp_getBalance' }))
    expect(one.status).toBe(204)
    expect(one.text).toBe('')
    const unknown = await post(JSON.stringify({ jsonrpc: '2.0', method: 'ilp_noSuchMethod' }))
    expect(unknown.status).toBe(204)
    const batch = await post(JSON.stringify([
      { jsonrpc: '2.0', method: 'ilp_getBalance' },
      { jsonrpc: '2.0', method: 'ilp_getAccountInfo', params: {} },
    ]))
    expect(batch.status).toBe(204)
    expect(batch.text).toBe('')
    // a notification runs: a prepare sent as one moves the balance
    const before = BigInt(await balanceOf(farm.url, 'alice'))
    const send = await post(JSON.stringify({
      jsonrpc: '2.0',
      method: 'ilp_sendPrepare',
      params: { amount: '5', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() },
    }))
    expect(send.status).toBe(204)
    expect(BigInt(await balanceOf(farm.url, 'alice'))).toBe(before - 5n)
  })

  it('a batch: answers for the requests with an id, in order, mixed results and errors', async () => {
    const res = await post(JSON.stringify([
      { jsonrpc: '2.0', method: 'ilp_getBalance', id: 1 },
      { jsonrpc: '2.0', method: 'ilp_getAccountInfo' },
      { jsonrpc: '2.0', method: 'ilp_noSuchMethod', id: '2' },
      { foo: 'boo' },
      { jsonrpc: '2.0', method: 'ilp_getAccountInfo', id: 3 },
      1,
    ]))
    expect(res.status).toBe(200)
    const answers = JSON.parse(res.text) as RpcAnswer[]
    expect(answers).toHaveLength(5)
    expect(answers[0]).toMatchObject({ id: 1, result: { balance: await balanceOf(farm.url, 'alice') } })
    expect(answers[1]).toMatchObject({ id: '2', error: { code: -32601 } })
    expect(answers[2]).toMatchObject({ id: null, error: { code: -32600 } })
    expect(answers[3]).toMatchObject({ id: 3, result: { accountId: 'alice' } })
    expect(answers[4]).toMatchObject({ id: null, error: { code: -32600 } })
  })
})

describe('POST /rpc: auth', () => {
  it('401 without a token, with a wrong one, with another scheme', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', method: 'ilp_getBalance', id: 1 })
    for (const token of [null, 'wrong-token', '']) {
      const res = await post(body, token)
      expect(res.status).toBe(401)
      // a token that was sent but matches no account is not reported as missing
      if (token === 'wrong-token') expect(JSON.parse(res.text).error.message).toMatch(/token is not valid/)
      // an unknown token is refused before the body is read (id null); without one, the call itself is refused
      expect(JSON.parse(res.text)).toMatchObject({ jsonrpc: '2.0', id: token === null || token === '' ? 1 : null, error: { code: -32001 } })
    }
    // a batch of calls that all need a token: 401 too; with a public method in it, 200 and per-call errors
    const batch = await post(JSON.stringify([JSON.parse(body), { jsonrpc: '2.0', method: 'ilp_getAccountInfo', id: 2 }]), null)
    expect(batch.status).toBe(401)
    const mixed = await post(JSON.stringify([JSON.parse(body), { jsonrpc: '2.0', method: 'rpc.discover', id: 2 }]), null)
    expect(mixed.status).toBe(200)
    expect(JSON.parse(mixed.text)).toMatchObject([{ id: 1, error: { code: -32001 } }, { id: 2, result: { openrpc: '1.3.2' } }])
    const basic = await request(`${farm.url}/rpc`, { method: 'POST', headers: { authorization: 'Basic alice-token', 'content-type': 'application/json' }, body })
    expect(basic.statusCode).toBe(401)
    await basic.body.dump()
    // the admin token is not an account token
    expect((await post(body, 'admin-token-for-tests')).status).toBe(401)
  })

  it("a token acts on its own account only: no param names another account", async () => {
    // give bob a balance that differs from alice's
    await call('ilp_sendPrepare', { amount: '3', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() })
    const aliceBalance = await balanceOf(farm.url, 'alice')
    const bobBalance = await balanceOf(farm.url, 'bob')
    expect(aliceBalance).not.toBe(bobBalance)
    for (const method of ['ilp_getBalance', 'ilp_getAccountInfo']) {
      for (const params of [{ account: 'bob' }, { accountId: 'bob' }, { id: 'bob' }, ['bob']]) {
        expect((await call(method, params)).error).toMatchObject({ code: -32602 })
      }
    }
    expect((await call('ilp_sendPrepare', { from: 'bob', amount: '1', destination: `${FARM_ADDRESS}.carol`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() })).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_quote', { from: 'bob', destination: `${FARM_ADDRESS}.carol`, sourceAmount: '1' })).error).toMatchObject({ code: -32602 })
    expect((await call('ilp_getBalance')).result).toMatchObject({ balance: aliceBalance })
    expect((await call('ilp_getBalance', undefined, 'bob-token')).result).toMatchObject({ balance: bobBalance })
    expect((await call('ilp_getAccountInfo', undefined, 'bob-token')).result).toMatchObject({ accountId: 'bob' })
    expect(await balanceOf(farm.url, 'bob')).toBe(bobBalance)
  })
})

describe('POST /rpc: methods', () => {
  it('ilp_getAccountInfo: what ILDCP gives', async () => {
    expect((await call('ilp_getAccountInfo')).result).toEqual({
      accountId: 'alice',
      relation: 'child',
      ilpAddress: `${FARM_ADDRESS}.alice`,
      connectorAddress: FARM_ADDRESS,
      assetCode: 'USD',
      assetScale: 6,
      // no incoming.callbackUrls, no outgoing.url: the farm calls it at no URL (ilp_setRpcUrl refuses all)
      allowedUrlPrefixes: [],
      // the farm receives for it while it is offline
      paymentPointer: `$${new URL(farm.url).host}/accounts/alice/spsp`,
      spspUrl: `${farm.url}/accounts/alice/spsp`,
    })
    expect((await call('ilp_getAccountInfo', {}, 'dave-token')).result).toMatchObject({ relation: 'peer', ilpAddress: null, paymentPointer: null })
    expect((await call('ilp_getAccountInfo', {}, 'bob-token')).result).toMatchObject({ allowedUrlPrefixes: [`${new URL(bob.url).origin}/`] })
  })

  it('ilp_getBalance: balance and limits as decimal strings, after a payment', async () => {
    const before = BigInt(await balanceOf(farm.url, 'alice'))
    const paid = await call('ilp_sendPrepare', { amount: '1234', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('base64'), expiresAt: inTenSeconds() })
    expect(paid.result).toMatchObject({ type: 'fulfill' })
    expect((await call('ilp_getBalance')).result).toEqual({
      balance: (before - 1234n).toString(),
      minBalance: '-1000000',
      maxBalance: null,
      maxPacketAmount: '500000',
    })
  })

  it('ilp_sendPrepare fulfilled: the fulfillment and data as base64, balances move by exactly the amount', async () => {
    const { fulfillment, condition } = makeCondition()
    fulfillmentStore.set(condition.toString('hex'), fulfillment)
    const aliceBefore = BigInt(await balanceOf(farm.url, 'alice'))
    const bobBefore = BigInt(await balanceOf(farm.url, 'bob'))
    const received = bob.received.length
    const answer = await call('ilp_sendPrepare', {
      amount: '4321',
      destination: `${FARM_ADDRESS}.bob.x`,
      executionCondition: condition.toString('hex'),
      expiresAt: inTenSeconds(),
      data: Buffer.from('hello rpc').toString('base64'),
    })
    expect(answer.result).toEqual({ type: 'fulfill', fulfillment: fulfillment.toString('base64'), data: Buffer.from('paid').toString('base64') })
    expect(bob.received).toHaveLength(received + 1)
    const forwarded = bob.received.at(-1)!.prepare
    expect(forwarded.amount).toBe('4321')
    expect(forwarded.destination).toBe(`${FARM_ADDRESS}.bob.x`)
    expect(forwarded.data.toString()).toBe('hello rpc')
    expect(forwarded.executionCondition.equals(condition)).toBe(true)
    expect(BigInt(await balanceOf(farm.url, 'alice'))).toBe(aliceBefore - 4321n)
    expect(BigInt(await balanceOf(farm.url, 'bob'))).toBe(bobBefore + 4321n)
    expect((await adminGet<unknown[]>(farm.url, '/admin/hotset')).json).toEqual([])
  })

  it('ilp_sendPrepare rejected: F02 from the farm, a downstream reject as is; no balance change', async () => {
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const carolBefore = await balanceOf(farm.url, 'carol')
    const noRoute = await call('ilp_sendPrepare', { amount: '50', destination: 'test.nowhere.x', executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() })
    expect(noRoute.result).toEqual({ type: 'reject', code: 'F02', triggeredBy: FARM_ADDRESS, message: expect.any(String), data: '' })
    const downstream = await call('ilp_sendPrepare', { amount: '50', destination: `${FARM_ADDRESS}.carol`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() })
    expect(downstream.result).toEqual({ type: 'reject', code: 'F99', triggeredBy: 'test.carol', message: 'no thanks', data: Buffer.from('why').toString('base64') })
    const tooBig = await call('ilp_sendPrepare', { amount: '500001', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() })
    expect(tooBig.result).toMatchObject({ type: 'reject', code: 'F08' })
    // minBalance 0: the reservation is refused
    const poor = await call('ilp_sendPrepare', { amount: '1', destination: `${FARM_ADDRESS}.bob`, executionCondition: knownCondition().toString('hex'), expiresAt: inTenSeconds() }, 'poor-token')
    expect(poor.result).toMatchObject({ type: 'reject', code: 'T04', triggeredBy: FARM_ADDRESS })
    expect(await balanceOf(farm.url, 'poor')).toBe('0')
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
    expect(await balanceOf(farm.url, 'carol')).toBe(carolBefore)
  })

  it('ilp_quote: from the calling account; refusals carry the ILP code', async () => {
    const q = await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob.x`, sourceAmount: '1000' })
    expect(q.result).toMatchObject({ sourceAmount: '1000', destinationAmount: '1000', nextHop: 'bob', sourceAsset: { code: 'USD', scale: 6 } })
    const back = await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob.x`, destinationAmount: '77' })
    expect(back.result).toMatchObject({ sourceAmount: '77', destinationAmount: '77', nextHop: 'bob' })
    expect(q.result).toMatchObject({ liquidity: { headroom: null, senderAvailable: expect.any(String), sufficient: true } })
    // a sender at its minBalance (0) cannot send: the quote says so rather than the packet's T04
    const poor = await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob.x`, sourceAmount: '1' }, 'poor-token')
    expect(poor.result).toMatchObject({ nextHop: 'bob', liquidity: { headroom: null, senderAvailable: '0', sufficient: false } })
    const noRoute = await call('ilp_quote', { destination: 'test.nowhere', sourceAmount: '1' })
    expect(noRoute.error).toMatchObject({ code: 1, data: { ilpCode: 'F02' } })
    // the route leads back to the sender
    const self = await call('ilp_quote', { destination: `${FARM_ADDRESS}.bob`, sourceAmount: '1' }, 'bob-token')
    expect(self.error).toMatchObject({ code: 1, data: { ilpCode: 'F02' } })
    // USD → EUR has no rate configured
    const noRate = await call('ilp_quote', { destination: `${FARM_ADDRESS}.eur`, sourceAmount: '1' })
    expect(noRate.error).toMatchObject({ code: 1, data: { ilpCode: 'F02' } })
  })

  it('rpc.discover: an OpenRPC document listing every method', async () => {
    const doc = (await call('rpc.discover')).result as { openrpc: string; methods: Array<{ name: string; params: unknown[]; result: unknown }> }
    expect(doc.openrpc).toMatch(/^1\.\d+\.\d+$/)
    expect(doc.methods.map((m) => m.name).sort()).toEqual(rpcMethods.map((m) => m.name).sort())
    expect(doc.methods.map((m) => m.name)).toEqual(expect.arrayContaining(['ilp_getBalance', 'ilp_getAccountInfo', 'ilp_quote', 'ilp_sendPrepare', 'rpc.discover']))
    for (const m of doc.methods) expect(m.result).toBeDefined()
    const send = doc.methods.find((m) => m.name === 'ilp_sendPrepare')!
    expect((send.params as Array<{ name: string }>).map((p) => p.name)).toEqual(['amount', 'destination', 'executionCondition', 'expiresAt', 'data'])
  })
})
