import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FarmClient, redeemTicket, signUp } from 'ilp-farm-client'
import { startTunnelServer, type TunnelServer } from '../../src/tunnel/server.js'
import { parseConfig } from '../../src/config/load.js'
import { eventually } from '../helpers/async.js'
import { account, adminGet, adminSend, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Accounts users make themselves (open sign-up, redeemed tickets) and the URLs
 * they may register to receive: the farm-wide users.rpcUrlPrefixes, a ticket's
 * own callbackUrls, and nothing at all without either. End to end on a real
 * Redis, farms on loopback, the tunnel server of the client package and
 * FarmClients that receive STREAM payments through it.
 */

let redis: TestRedis
let tunnel: TunnelServer
/** Sign-up on, users.rpcUrlPrefixes: the tunnel server. */
let farm: TestFarm
/** Sign-up on, no users.rpcUrlPrefixes: the farm as it was configured before the setting existed. */
let bare: TestFarm
let tunnelPrefix: string
let payer: FarmClient
const clients: FarmClient[] = []

interface RpcAnswer {
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: { reason?: string } }
}

interface View {
  balance: string
  origin: string
  incoming: { callbackUrls: string[] | null } | null
  allowedUrlPrefixes: string[]
  rpcUrl: string | null
}

const signupAccount = { assetCode: 'USD', assetScale: 6, minBalance: '0', maxBalance: '5000000', maxPacketAmount: '100000' }
// The payer is an operator's account from the config; it registers its own endpoint on loopback (no tunnel).
const payerAccount = account('payer', { minBalance: '-5000000', maxPacketAmount: '100000', incoming: { token: 'payer-token', callbackUrls: ['http://127.0.0.1:'] } })

beforeAll(async () => {
  redis = await startTestRedis()
  tunnel = await startTunnelServer()
  tunnelPrefix = `${tunnel.url}/`
  const signup = { enabled: true, difficulty: 8, challengeTtlMs: 30_000, account: signupAccount }
  farm = await startTestFarm(redis.url, [payerAccount], { signup, users: { rpcUrlPrefixes: [tunnelPrefix] } })
  bare = await startTestFarm(redis.url, [payerAccount], { signup })
  payer = new FarmClient({ rpcUrl: `${farm.url}/rpc`, token: 'payer-token', tunnel: false })
  await payer.start()
})

afterAll(async () => {
  for (const client of clients) await client.stop().catch(() => undefined)
  await payer?.stop().catch(() => undefined)
  await tunnel?.close()
  await farm?.close()
  await bare?.close()
  await redis?.close()
})

async function rpc(farmUrl: string, method: string, params: unknown, token?: string): Promise<RpcAnswer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await request(`${farmUrl}/rpc`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return (await res.body.json()) as RpcAnswer
}

async function view(farmUrl: string, id: string): Promise<View> {
  const { status, json } = await adminGet<View>(farmUrl, `/admin/accounts/${id}`)
  expect(status).toBe(200)
  return json
}

async function balances(ids: string[]): Promise<bigint[]> {
  return Promise.all(ids.map(async (id) => BigInt((await view(farm.url, id)).balance)))
}

/** A receiving FarmClient behind the tunnel server, started and registered. */
async function receiverFor(token: string): Promise<FarmClient> {
  const client = new FarmClient({ rpcUrl: `${farm.url}/rpc`, token, tunnel: { host: tunnel.url }, probeIntervalMs: 1_000 })
  clients.push(client)
  await client.start()
  return client
}

/** The payer sends `amount` to the receiver by STREAM; both farm balances move by exactly that. */
async function payAndCheck(receiver: FarmClient, id: string, amount: bigint): Promise<void> {
  const [payerBefore, receiverBefore] = await balances(['payer', id])
  const { destinationAccount, sharedSecret } = await receiver.receive(`from-payer-${id}`)
  expect(destinationAccount.startsWith(`${FARM_ADDRESS}.${id}.`)).toBe(true)
  const result = await payer.pay({ destinationAccount, sharedSecret }, amount, { timeoutMs: 20_000 })
  expect(result.sent).toBe(String(amount))
  expect(result.delivered).toBe(String(amount))
  await eventually(() => expect(receiver.totalReceived).toBe(amount))
  const [payerAfter, receiverAfter] = await balances(['payer', id])
  expect(payerAfter! - payerBefore!).toBe(-amount)
  expect(receiverAfter! - receiverBefore!).toBe(amount)
  expect((await receiver.balance()).balance).toBe(String(receiverBefore! + amount))
}

describe('without users.rpcUrlPrefixes', () => {
  it('a signed-up account may register no URL at all, and the client says why before opening a tunnel', async () => {
    const sally = await signUp(`${bare.url}/rpc`, { id: 'sally', threads: 1 })
    const seen = await view(bare.url, 'sally')
    expect(seen).toMatchObject({ origin: 'signup', incoming: { callbackUrls: null }, allowedUrlPrefixes: [] })
    expect((await rpc(bare.url, 'ilp_getAccountInfo', {}, sally.token)).result).toMatchObject({ allowedUrlPrefixes: [] })
    for (const url of [`${tunnelPrefix}sally`, 'http://127.0.0.1:9/', 'http://169.254.169.254/latest/meta-data']) {
      const refused = await rpc(bare.url, 'ilp_setRpcUrl', { url }, sally.token)
      expect(refused.error?.code).toBe(-32602)
      expect(refused.error?.message).toContain('the operator allows it no RPC URL yet')
    }
    const client = new FarmClient({ rpcUrl: `${bare.url}/rpc`, token: sally.token, tunnel: { host: tunnel.url } })
    await expect(client.start()).rejects.toThrow(/allows account sally no RPC URL/)
    await client.stop()
    expect(tunnel.tunnels()).toHaveLength(0)
  })
})

describe('with users.rpcUrlPrefixes naming the tunnel server', () => {
  it('sign up by proof of work, open the tunnel, register it and receive 1,000,000 exactly', async () => {
    const sam = await signUp(`${farm.url}/rpc`, { id: 'sam', threads: 1 })
    // copied into the stored account, so the operator's view shows it
    expect(await view(farm.url, 'sam')).toMatchObject({ origin: 'signup', incoming: { callbackUrls: [tunnelPrefix] }, allowedUrlPrefixes: [tunnelPrefix] })
    expect((await rpc(farm.url, 'ilp_getAccountInfo', {}, sam.token)).result).toMatchObject({ accountId: 'sam', allowedUrlPrefixes: [tunnelPrefix] })

    const receiver = await receiverFor(sam.token)
    expect(receiver.registeredUrl!.startsWith(tunnelPrefix)).toBe(true)
    expect((await view(farm.url, 'sam')).rpcUrl).toBe(receiver.registeredUrl)
    await payAndCheck(receiver, 'sam', 1_000_000n)
  })

  it('a URL outside the prefixes is still refused, and the registered one stays', async () => {
    const sid = await signUp(`${farm.url}/rpc`, { id: 'sid', threads: 1 })
    const port = new URL(tunnel.url).port
    const outside = [
      `http://127.0.0.1:${Number(port) + 1}/sid`, // loopback, but not the tunnel server
      `${farm.url}/rpc`,
      'http://localhost:9/',
      'http://169.254.169.254/latest/meta-data',
      `https://127.0.0.1:${port}/sid`,
    ]
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: `${tunnelPrefix}sid-here` }, sid.token)).result).toEqual({ url: `${tunnelPrefix}sid-here` })
    for (const url of outside) {
      const refused = await rpc(farm.url, 'ilp_setRpcUrl', { url }, sid.token)
      expect(refused.error?.code, url).toBe(-32602)
      expect(refused.error?.message).toContain(`must start with one of ["${tunnelPrefix}"]`)
    }
    expect((await rpc(farm.url, 'ilp_getRpcUrl', {}, sid.token)).result).toEqual({ url: `${tunnelPrefix}sid-here` })
  })

  it('redeem a ticket (no prefixes of its own: the farm-wide ones), register through the tunnel and receive 250,000 exactly', async () => {
    const issued = await adminSend<{ ticket: string }>(farm.url, 'POST', '/admin/tickets', { account: { assetCode: 'USD', assetScale: 6, maxBalance: '1000000' } })
    expect(issued.status).toBe(201)
    const tia = await redeemTicket(`${farm.url}/rpc`, issued.json.ticket, { id: 'tia' })
    expect(await view(farm.url, 'tia')).toMatchObject({ origin: 'ticket', incoming: { callbackUrls: [tunnelPrefix] }, allowedUrlPrefixes: [tunnelPrefix] })
    const receiver = await receiverFor(tia.token)
    await payAndCheck(receiver, 'tia', 250_000n)
  })

  it("a ticket's own callbackUrls replace the farm-wide ones (an empty list allows none)", async () => {
    const ticket = async (callbackUrls: unknown) => {
      const issued = await adminSend<{ ticket: string; error?: string; issues?: string[] }>(farm.url, 'POST', '/admin/tickets', {
        account: { assetCode: 'USD', assetScale: 6 },
        callbackUrls,
      })
      return issued
    }
    const wallet = await ticket(['https://wallet.example/', 'https://*.tunnel.example/'])
    expect(wallet.status).toBe(201)
    const tom = await redeemTicket(`${farm.url}/rpc`, wallet.json.ticket, { id: 'tom' })
    expect(await view(farm.url, 'tom')).toMatchObject({
      incoming: { callbackUrls: ['https://wallet.example/', 'https://*.tunnel.example/'] },
      allowedUrlPrefixes: ['https://wallet.example/', 'https://*.tunnel.example/'],
    })
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: `${tunnelPrefix}tom` }, tom.token)).error?.code).toBe(-32602)
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: 'https://abc123.tunnel.example/rpc' }, tom.token)).result).toEqual({ url: 'https://abc123.tunnel.example/rpc' })
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: 'https://a.b.tunnel.example/rpc' }, tom.token)).error?.code).toBe(-32602)
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: null }, tom.token)).result).toEqual({ url: null })

    const none = await ticket([])
    const nel = await redeemTicket(`${farm.url}/rpc`, none.json.ticket, { id: 'nel' })
    expect(await view(farm.url, 'nel')).toMatchObject({ incoming: { callbackUrls: [] }, allowedUrlPrefixes: [] })
    expect((await rpc(farm.url, 'ilp_setRpcUrl', { url: `${tunnelPrefix}nel` }, nel.token)).error?.message).toContain('allows it no RPC URL')

    // validated as incoming.callbackUrls are, when the ticket is issued
    const bad = await ticket(['https://wallet.example', 'ftp://files.example/'])
    expect(bad.status).toBe(400)
    expect(bad.json.issues).toEqual([
      'callbackUrls[0]: must be an http(s) URL prefix that ends its host with "/" or ":" (such as "https://wallet.example/" or "http://127.0.0.1:")',
      'callbackUrls[1]: must be an http(s) URL prefix that ends its host with "/" or ":" (such as "https://wallet.example/" or "http://127.0.0.1:")',
    ])
    expect((await ticket('https://wallet.example/')).status).toBe(400)
    const viaIncoming = await adminSend(farm.url, 'POST', '/admin/tickets', { account: { assetCode: 'USD', assetScale: 6, incoming: { callbackUrls: ['https://wallet.example/'] } } })
    expect(viaIncoming.status).toBe(400)
  })

  it('config: users.rpcUrlPrefixes is checked like incoming.callbackUrls and defaults to none', () => {
    const base = { ilpAddress: 'test.farm', accounts: [account('a')] }
    expect(parseConfig(base, 'test', {}).users.rpcUrlPrefixes).toEqual([])
    expect(parseConfig({ ...base, users: { rpcUrlPrefixes: ['https://*.loca.lt/', 'http://127.0.0.1:'] } }, 'test', {}).users.rpcUrlPrefixes).toHaveLength(2)
    expect(() => parseConfig({ ...base, users: { rpcUrlPrefixes: ['https://tunnel.example'] } }, 'test', {})).toThrow(
      /users\.rpcUrlPrefixes\[0\]: must be an http\(s\) URL prefix that ends its host/,
    )
    expect(() => parseConfig({ ...base, users: { rpcUrls: [] } }, 'test', {})).toThrow(/users\.rpcUrls: unknown key/)
  })
})
