import { randomBytes } from 'node:crypto'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { deserializeIlpFulfill, deserializeIlpReject, type IlpPrepare, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoutedPacket } from '../../../src/packet/ports.js'
import { forward, type ForwardResult, transportOf } from '../../../src/packet/steps/forward.js'
import { OutgoingClient } from '../../../src/peers/outgoing.js'
import { HostedReceiver } from '../../../src/receiver/hosted-receiver.js'
import { UserRpc } from '../../../src/rpc/user-rpc.js'
import { fulfillKnown, knownCondition, readBody, startTestPeer, type TestPeer } from '../../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, arrived, routed, startCore, type TestCore } from './core.js'

/** The next hop's behaviour, by the last segment of the destination. */
function nextHop(prepare: IlpPrepare) {
  switch (prepare.destination.split('.').pop()) {
    case 'fulfill':
      return fulfillKnown(prepare)
    case 'wrong':
      return serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 9), data: Buffer.alloc(0) })
    case 'reject':
      return serializeIlpReject({ code: 'F99', triggeredBy: 'test.farm.bob', message: 'no thanks', data: Buffer.from('why') })
    case 'busy':
      return { status: 503 }
    case 'missing':
      return { status: 404 }
    case 'garbage':
      return Buffer.from('not an ILP packet')
    default:
      return 'hang' as const
  }
}

let redis: TestRedis
let core: TestCore
let peer: TestPeer
let rpcServer: Server
let rpcUrl: string
const rpcCalls: unknown[] = []
const sync = new OutgoingClient()
const async = new OutgoingClient()
let userRpc: UserRpc

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer(nextHop)
  // a user's own JSON-RPC URL: answers ilp_receivePrepare with the fulfillment of the known condition
  rpcServer = createServer(async (req, res) => {
    const call = JSON.parse((await readBody(req)).toString('utf8')) as { id: number; params: { executionCondition: string } }
    rpcCalls.push(call)
    const fulfill = deserializeIlpFulfill(fulfillKnown({ executionCondition: Buffer.from(call.params.executionCondition, 'base64') } as IlpPrepare))
    const result = { type: 'fulfill', fulfillment: fulfill.fulfillment.toString('base64'), data: fulfill.data.toString('base64') }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result }))
  })
  await new Promise<void>((resolve) => rpcServer.listen(0, '127.0.0.1', resolve))
  const origin = `http://127.0.0.1:${(rpcServer.address() as AddressInfo).port}`
  rpcUrl = `${origin}/rpc`
  core = await startCore(redis.url, [
    accountInput('alice', { minBalance: '-1000' }),
    accountInput('bob', { outgoing: { url: peer.url } }),
    accountInput('gone', { outgoing: { url: 'http://127.0.0.1:9/ilp' } }),
    accountInput('ursula', { incoming: { token: 'ursula-token-for-tests', callbackUrls: [`${origin}/`] } }),
  ])
  userRpc = new UserRpc(core.registry)
})
afterAll(async () => {
  await Promise.all([sync.close(), async.close(), userRpc?.close()])
  rpcServer?.closeAllConnections()
  await new Promise((resolve) => rpcServer?.close(resolve))
  await peer?.close()
  await core?.close()
  await redis?.close()
})

const deps = () => ({ transports: { sync, async, userRpc }, log: core.log })

function packet(destination: string, expiresInMs = 10_000): Promise<RoutedPacket> {
  const prepare = { amount: '25', destination, executionCondition: knownCondition(), expiresAt: new Date(Date.now() + expiresInMs), data: Buffer.from('hi') }
  return routed(core, arrived(core.account('alice'), prepare))
}

const failure = (result: ForwardResult) => (result.kind === 'failed' ? [result.rejection.code, result.rejection.message] : result.kind)

describe('forward step, over real sockets', () => {
  it('sends the prepare with the farm’s amount and expiry, condition and data untouched, and takes a matching fulfill', async () => {
    const ctx = await packet('test.farm.bob.fulfill')
    const result = await forward(ctx, deps())
    expect(result.kind).toBe('fulfill')
    const sent = peer.received.at(-1)!.prepare
    expect(sent).toEqual({ ...ctx.prepare, amount: ctx.outAmount, expiresAt: ctx.outExpiresAt })
    expect(sent.expiresAt.getTime()).toBe(ctx.prepare.expiresAt.getTime() - core.minMessageWindowMs)
  })

  it('a fulfillment that does not hash to the condition is F05', async () => {
    expect(failure(await forward(await packet('test.farm.bob.wrong'), deps()))).toEqual(['F05', 'fulfillment does not match the condition'])
  })

  it('the next hop’s reject is passed on as its bytes, with its code', async () => {
    const result = await forward(await packet('test.farm.bob.reject'), deps())
    if (result.kind !== 'reject') throw new Error(`got ${result.kind}`)
    expect(result.code).toBe('F99')
    expect(deserializeIlpReject(result.raw)).toMatchObject({ code: 'F99', triggeredBy: 'test.farm.bob', message: 'no thanks', data: Buffer.from('why') })
  })

  it('HTTP 5xx is T00: the hop cannot serve now', async () => {
    expect(failure(await forward(await packet('test.farm.bob.busy'), deps()))).toEqual(['T00', 'the next hop is temporarily unavailable'])
  })

  it('any other status is T01, in the farm’s own words', async () => {
    expect(failure(await forward(await packet('test.farm.bob.missing'), deps()))).toEqual(['T01', 'no valid answer from the next hop'])
  })

  it('a 200 whose body is no ILP packet is T01', async () => {
    expect(failure(await forward(await packet('test.farm.bob.garbage'), deps()))).toEqual(['T01', 'next hop answered with an invalid ILP packet'])
  })

  it('a refused connection is T01, the address only in the log', async () => {
    expect(failure(await forward(await packet('test.farm.gone'), deps()))).toEqual(['T01', 'no valid answer from the next hop'])
  })

  it('no answer by the outgoing expiry is R00, given up then', async () => {
    const ctx = await packet('test.farm.bob.silent', 1_600) // 600 ms after the 1 s message window
    const started = Date.now()
    const result = await forward(ctx, deps())
    expect(result.kind === 'failed' && result.rejection.code).toBe('R00')
    expect(Date.now()).toBeGreaterThanOrEqual(ctx.outExpiresAt.getTime() - 20)
    expect(Date.now() - started).toBeLessThan(3_000)
  })

  it('a next hop whose user set an RPC URL gets an ilp_receivePrepare call there, with the farm’s amount and expiry', async () => {
    expect(await core.registry.setRpcUrl('ursula', rpcUrl)).toBe(true)
    // until the cached account has learnt its RPC URL (over pub/sub), it is a child that cannot be reached
    let ctx: RoutedPacket | undefined
    for (let i = 0; ctx?.nextHopRpcUrl === undefined && i < 50; i++) {
      ctx = await packet('test.farm.ursula').catch(() => undefined)
      if (ctx?.nextHopRpcUrl === undefined) await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (ctx === undefined) throw new Error('ursula never became reachable')
    expect(ctx.nextHopRpcUrl).toBe(rpcUrl)
    expect(transportOf(ctx, deps().transports)).toBe(userRpc)
    expect((await forward(ctx, deps())).kind).toBe('fulfill')
    expect(rpcCalls.at(-1)).toMatchObject({ method: 'ilp_receivePrepare', params: { amount: '25', expiresAt: ctx.outExpiresAt.toISOString(), destination: 'test.farm.ursula' } })
  })
})

describe('transport of a next hop', () => {
  it('ILP-over-HTTP sync, async for outgoing.mode async; an RPC URL only when this worker delivers to them', async () => {
    const ctx = await packet('test.farm.bob.fulfill')
    const transports = deps().transports
    expect(transportOf(ctx, transports)).toBe(sync)
    const asyncHop = { ...ctx, nextHop: { ...ctx.nextHop, outgoing: { url: peer.url, mode: 'async' as const } } }
    expect(transportOf(asyncHop, transports)).toBe(async)
    const withRpcUrl = { ...ctx, nextHopRpcUrl: rpcUrl }
    expect(transportOf(withRpcUrl, transports)).toBe(userRpc)
    expect(transportOf(withRpcUrl, { sync, async })).toBe(sync)
  })

  it('the farm’s own receiver takes only the packets under the next hop’s hosted address, before its RPC URL', async () => {
    const hosted = new HostedReceiver('test.farm', randomBytes(32))
    const transports = { ...deps().transports, hosted }
    const ctx = await packet('test.farm.bob.fulfill')
    expect(transportOf({ ...ctx, nextHopRpcUrl: rpcUrl }, transports)).toBe(userRpc)
    const toReceiver = { ...ctx, prepare: { ...ctx.prepare, destination: `${hosted.address('bob')}.conn1` }, nextHopRpcUrl: rpcUrl }
    expect(transportOf(toReceiver, transports)).toBe(hosted)
    // another account's hosted address is not bob's
    expect(transportOf({ ...toReceiver, prepare: { ...ctx.prepare, destination: `${hosted.address('ursula')}.conn1` } }, transports)).toBe(userRpc)
  })
})
