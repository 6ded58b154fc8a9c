import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Type } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseRpcUrl } from '../../src/rpc/user-rpc.js'
import { account, adminSend, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillmentStore, knownCondition } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The RPC URL an account registers: only the normalized URL is stored (what
 * the prefix check saw is what is called), strings other parsers read
 * differently are refused, and a URL the account's prefixes no longer allow
 * after an admin update is not called.
 */
let redis: TestRedis
let farm: TestFarm
let server: Server
let serverUrl: string
const calls: string[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      calls.push(req.url ?? '')
      const call = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: number; params: { executionCondition: string } }
      const fulfillment = fulfillmentStore.get(Buffer.from(call.params.executionCondition, 'base64').toString('hex'))!
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ jsonrpc: '2.0', id: call.id, result: { type: 'fulfill', fulfillment: fulfillment.toString('base64'), data: '' } }))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  serverUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  farm = await startTestFarm(redis.url, [account('alice', { minBalance: '-1000000' })])
  const made = await adminSend(farm.url, 'POST', '/admin/accounts', {
    id: 'rita',
    relation: 'child',
    assetCode: 'USD',
    assetScale: 6,
    incoming: { token: 'rita-token-0123456789', callbackUrls: ['http://127.0.0.1:'] },
  })
  expect(made.status).toBe(201)
})

afterAll(async () => {
  await farm?.close()
  server?.closeAllConnections()
  await new Promise<void>((resolve) => server?.close(() => resolve()))
  await redis?.close()
})

async function rpc(method: string, params: unknown): Promise<{ result?: { url: string | null }; error?: { code: number; message: string } }> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer rita-token-0123456789' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return (await res.body.json()) as { result?: { url: string | null }; error?: { code: number; message: string } }
}

describe('RPC URL', () => {
  it('refuses strings that parsers read differently (backslash, tab, line break, space)', async () => {
    for (const url of ['http://127.0.0.1:7902\\@evil/', 'http://127.0.0.1:7902/\\evil', 'http://127.0.0.1:7902\t/x', 'http://127.0.0.1:7902/a\nb', ' http://127.0.0.1:7902/']) {
      expect(parseRpcUrl(url), url).toBeUndefined()
      expect((await rpc('ilp_setRpcUrl', { url })).error?.code, url).toBe(-32602)
    }
    expect((await rpc('ilp_getRpcUrl', [])).result).toEqual({ url: null })
  })

  it('stores and answers the normalized URL', async () => {
    const port = new URL(serverUrl).port
    const set = await rpc('ilp_setRpcUrl', { url: `HTTP://127.0.0.1:${port}/a/../rpc` })
    expect(set.result).toEqual({ url: `http://127.0.0.1:${port}/rpc` })
    expect((await rpc('ilp_getRpcUrl', [])).result).toEqual({ url: `http://127.0.0.1:${port}/rpc` })
    expect(await redis.client.get(`${farm.config.redis.keyPrefix}{acct:rita}:rpcUrl`)).toBe(`http://127.0.0.1:${port}/rpc`)
  })

  it('is no longer called once the account’s allowed prefixes narrow', async () => {
    const toRita = () => prepareTo(`${FARM_ADDRESS}.rita.wallet`, '5', knownCondition())
    expect((await sendIlp(farm.url, 'alice', toRita())).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    const before = calls.length
    expect(before).toBeGreaterThan(0)
    const updated = await adminSend(farm.url, 'PUT', '/admin/accounts/rita', {
      id: 'rita',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      incoming: { callbackUrls: ['https://wallet.example/'] },
    })
    expect(updated.status).toBe(200)
    const answer = await sendIlp(farm.url, 'alice', toRita())
    expect(answer.packet?.type).toBe(Type.TYPE_ILP_REJECT)
    expect(calls.length).toBe(before)
  })
})
