import { createServer as createHttpServer, type Server as HttpServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { searchPow } from '@ilp-farm/protocol'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { createPlugin, freePort, type TestPlugin } from '../helpers/plugin-http.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { startStreamReceiver, type StreamReceiver } from '../helpers/stream.js'

/**
 * A wallet end to end, as docs/CLIENT.md's curl path tells it, over JSON-RPC
 * only: bob signs up by proof of work, reads his payment pointer, and is paid
 * while offline by alice's ilp_pay (the farm runs @interledger/pay for her,
 * its hosted receiver for him), notified as it happens; then bob pays an
 * outside SPSP receiver (carol's own STREAM server behind her own SPSP
 * endpoint) with ilp_pay, and both payments are in ilp_getPayments. Real
 * Redis, real sockets, two workers.
 */
let redis: TestRedis
const farms: TestFarm[] = []
let carolPlugin: TestPlugin
let carolReceiver: StreamReceiver
let carolSpsp: HttpServer
let carolSpspUrl = ''
const DIFFICULTY = 8

beforeAll(async () => {
  redis = await startTestRedis()
  const carolPort = await freePort()
  const accounts = [
    account('alice', { minBalance: '-1000000000' }),
    account('carol', { outgoing: { url: `http://127.0.0.1:${carolPort}/`, token: 'farm-to-carol' } }),
  ]
  const config = {
    redis: { keyPrefix: 'wallet:' },
    signup: { enabled: true, difficulty: DIFFICULTY, account: { assetCode: 'USD', assetScale: 6, minBalance: '0', maxPacketAmount: '100000' } },
    payments: { allowPrivateSpsp: true, allowHttpSpsp: true },
  }
  for (const shard of [0, 1]) farms.push(await startTestFarm(redis.url, accounts, config, { shard }))
  // carol receives herself: her own STREAM server, and an SPSP endpoint that hands out its details
  carolPlugin = createPlugin({ port: carolPort, farmUrl: farms[0]!.url, accountId: 'carol', outgoingToken: 'carol-token', incomingToken: 'farm-to-carol' })
  carolReceiver = await startStreamReceiver(carolPlugin.plugin)
  carolSpsp = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/spsp4+json' })
    res.end(JSON.stringify({ destination_account: carolReceiver.destinationAccount, shared_secret: carolReceiver.sharedSecret.toString('base64') }))
  })
  await new Promise<void>((resolve) => carolSpsp.listen(0, '127.0.0.1', resolve))
  carolSpspUrl = `http://127.0.0.1:${(carolSpsp.address() as AddressInfo).port}/.well-known/pay`
})

afterAll(async () => {
  // the sender (@interledger/pay) is gone and cannot be told the connection ended: destroy it, not end it
  const connection = await Promise.race([carolReceiver?.accepted, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 10))])
  connection?.destroy()
  await carolReceiver?.server.close()
  await carolPlugin?.close()
  carolSpsp?.closeAllConnections()
  await new Promise((resolve) => carolSpsp?.close(resolve))
  for (const farm of farms) await farm.close()
  await redis?.close()
})

async function rpc<T = Record<string, unknown>>(farm: TestFarm, method: string, params: unknown, token?: string): Promise<T> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const answer = (await res.body.json()) as { result?: T; error?: unknown }
  if (answer.error !== undefined) throw new Error(`${method}: ${JSON.stringify(answer.error)}`)
  return answer.result!
}

describe('a wallet over JSON-RPC alone', () => {
  it('signs up, is paid while offline and told so, pays an outside receiver, and sees both', async () => {
    // sign up by proof of work
    const { challenge, difficulty } = await rpc<{ challenge: string; difficulty: number }>(farms[0]!, 'ilp_getSignupChallenge', {})
    const nonce = searchPow(challenge, difficulty, 0, 1, 1 << 20)!
    const bob = await rpc<{ id: string; token: string }>(farms[0]!, 'ilp_signUp', { challenge, nonce, id: 'bob' })
    // his payment pointer: the farm receives for him
    const info = await rpc<{ paymentPointer: string; spspUrl: string }>(farms[1]!, 'ilp_getAccountInfo', {}, bob.token)
    expect(info.paymentPointer).toBe(`$${new URL(farms[1]!.url).host}/accounts/bob/spsp`)

    // notified as it happens, through the other worker
    const abort = new AbortController()
    // an event stream on a connection of its own, as a browser's EventSource has
    const feedAgent = new Agent()
    const feed = await request(`${farms[1]!.url}/rpc/events`, { headers: { authorization: `Bearer ${bob.token}` }, signal: abort.signal, dispatcher: feedAgent })
    expect(feed.statusCode).toBe(200)
    let events = ''
    const reading = (async () => {
      try {
        for await (const chunk of feed.body) events += (chunk as Buffer).toString('utf8')
      } catch {
        // aborted
      }
    })()

    // alice pays him (he is offline: no RPC URL, no outgoing URL)
    const paid = await rpc<Record<string, unknown>>(farms[0]!, 'ilp_pay', { paymentPointer: info.spspUrl, sourceAmount: '300000' }, 'alice-token')
    expect(paid).toMatchObject({ state: 'completed', amount: '300000', delivered: '300000' })
    expect(await balanceOf(farms[0]!.url, 'bob')).toBe('300000')
    const deadline = Date.now() + 5_000
    while (!events.includes('"amount":"300000"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    abort.abort()
    await reading
    await feedAgent.close()
    expect(events).toContain('event: payment')
    expect(events).toContain(`"counterpart":"${FARM_ADDRESS}.alice"`)

    // bob pays an outside SPSP receiver from what he got
    const out = await rpc<Record<string, unknown>>(farms[1]!, 'ilp_pay', { paymentPointer: carolSpspUrl, sourceAmount: '120000' }, bob.token)
    expect(out).toMatchObject({ state: 'completed', amount: '120000', delivered: '120000' })
    expect(carolReceiver.received()).toBe(120_000n)
    expect(await balanceOf(farms[0]!.url, 'bob')).toBe('180000')

    // both, newest first
    const history = await rpc<{ payments: Array<Record<string, unknown>> }>(farms[0]!, 'ilp_getPayments', {}, bob.token)
    expect(history.payments.map((p) => [p.direction, p.amount, p.counterpart])).toEqual([
      ['outgoing', '120000', carolSpspUrl],
      ['incoming', '300000', `${FARM_ADDRESS}.alice`],
    ])
  })
})
