import { createHash, randomBytes } from 'node:crypto'
import { deserializeIlpFulfill, deserializeIlpReject, type IlpPrepare, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { LocalEndpoint } from 'ilp-farm-client'
import { toPacket } from '../../src/rpc/user-rpc.js'

/**
 * The client's local endpoint over real sockets: `ilp_receivePrepare` as
 * the farm sends it (docs/JSON-RPC.md), answered in the shape the farm's own
 * parser (src/rpc/user-rpc.ts, toPacket) takes; the secret path, the probe,
 * the optional bearer token, SPSP.
 */

const fulfillment = randomBytes(32)
const condition = createHash('sha256').update(fulfillment).digest()
const received: IlpPrepare[] = []

let endpoint: LocalEndpoint
let guarded: LocalEndpoint

function handler(prepare: IlpPrepare): Promise<Buffer> {
  received.push(prepare)
  if (prepare.amount === '13') {
    return Promise.resolve(serializeIlpReject({ code: 'F99', triggeredBy: 'test.farm.bob', message: 'unlucky', data: Buffer.from('why') }))
  }
  if (prepare.amount === '99') return new Promise(() => undefined) // never answers
  return Promise.resolve(serializeIlpFulfill({ fulfillment, data: Buffer.from('thanks') }))
}

beforeAll(async () => {
  endpoint = new LocalEndpoint({
    onPrepare: handler,
    spsp: async () => ({ destinationAccount: 'test.farm.bob.abc', sharedSecret: Buffer.alloc(32, 7) }),
  })
  await endpoint.start()
  guarded = new LocalEndpoint({ onPrepare: handler, bearerToken: 'farm-to-bob' })
  await guarded.start()
})

afterAll(async () => {
  await endpoint?.close()
  await guarded?.close()
})

function params(amount: string, expiresInMs = 5_000): Record<string, string> {
  return {
    amount,
    destination: 'test.farm.bob.abc',
    executionCondition: condition.toString('base64'),
    expiresAt: new Date(Date.now() + expiresInMs).toISOString(),
    data: Buffer.from('hello').toString('base64'),
  }
}

async function call(target: LocalEndpoint, body: unknown, opts: { path?: string; headers?: Record<string, string> } = {}) {
  const res = await request(`${target.url}${opts.path ?? target.secretPath}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  const text = await res.body.text()
  return { status: res.statusCode, text, json: text === '' ? undefined : (JSON.parse(text) as Record<string, unknown>) }
}

describe('LocalEndpoint', () => {
  it('answers ilp_receivePrepare with the fulfill, as the farm parses it', async () => {
    const res = await call(endpoint, { jsonrpc: '2.0', id: 17, method: 'ilp_receivePrepare', params: params('1000') })
    expect(res.status).toBe(200)
    expect(res.json).toEqual({
      jsonrpc: '2.0',
      id: 17,
      result: { type: 'fulfill', fulfillment: fulfillment.toString('base64'), data: Buffer.from('thanks').toString('base64') },
    })
    expect(deserializeIlpFulfill(toPacket(Buffer.from(res.text), 17)).fulfillment).toEqual(fulfillment)
    const prepare = received.at(-1)!
    expect(prepare.amount).toBe('1000')
    expect(prepare.executionCondition).toEqual(condition)
    expect(prepare.data.toString()).toBe('hello')
  })

  it('answers with the reject, every field', async () => {
    const res = await call(endpoint, { jsonrpc: '2.0', id: 18, method: 'ilp_receivePrepare', params: params('13') })
    expect(res.json!.result).toEqual({ type: 'reject', code: 'F99', triggeredBy: 'test.farm.bob', message: 'unlucky', data: Buffer.from('why').toString('base64') })
    expect(deserializeIlpReject(toPacket(Buffer.from(res.text), 18)).code).toBe('F99')
  })

  it('answers R00 when the handler has not answered by the expiry, and for an expired prepare', async () => {
    const late = await call(endpoint, { jsonrpc: '2.0', id: 1, method: 'ilp_receivePrepare', params: params('99', 200) })
    expect((late.json!.result as { code: string }).code).toBe('R00')
    const expired = await call(endpoint, { jsonrpc: '2.0', id: 2, method: 'ilp_receivePrepare', params: params('5', -1) })
    expect((expired.json!.result as { code: string }).code).toBe('R00')
  })

  it('only the secret path reaches the handler', async () => {
    const count = received.length
    const res = await call(endpoint, { jsonrpc: '2.0', id: 1, method: 'ilp_receivePrepare', params: params('1') }, { path: '/rpc' })
    expect(res.status).toBe(404)
    const almost = await call(endpoint, { jsonrpc: '2.0', id: 1, method: 'ilp_receivePrepare', params: params('1') }, { path: `${endpoint.secretPath}x` })
    expect(almost.status).toBe(404)
    expect(received.length).toBe(count)
    expect(endpoint.secretPath.length).toBeGreaterThanOrEqual(33) // 192 random bits
  })

  it('JSON-RPC errors: parse error, invalid request, unknown method, invalid params', async () => {
    expect((await call(endpoint, '{not json')).json!.error).toMatchObject({ code: -32700 })
    expect((await call(endpoint, [{ jsonrpc: '2.0', id: 1, method: 'ilp_receivePrepare' }])).json!.error).toMatchObject({ code: -32600 })
    expect((await call(endpoint, { jsonrpc: '2.0', id: 3, method: 'ilp_sendPrepare', params: params('1') })).json).toMatchObject({ id: 3, error: { code: -32601 } })
    const bad = await call(endpoint, { jsonrpc: '2.0', id: 4, method: 'ilp_receivePrepare', params: { ...params('1'), executionCondition: 'AAAA' } })
    expect(bad.json).toMatchObject({ id: 4, error: { code: -32602 } })
    expect(((bad.json!.error as { message: string }).message)).toMatch(/executionCondition/)
    const amount = await call(endpoint, { jsonrpc: '2.0', id: 5, method: 'ilp_receivePrepare', params: { ...params('1'), amount: '18446744073709551616' } })
    expect(amount.json).toMatchObject({ error: { code: -32602 } })
  })

  it('requires the bearer token when one is configured', async () => {
    const body = { jsonrpc: '2.0', id: 1, method: 'ilp_receivePrepare', params: params('1') }
    expect((await call(guarded, body)).status).toBe(401)
    expect((await call(guarded, body, { headers: { authorization: 'Bearer wrong' } })).status).toBe(401)
    const ok = await call(guarded, body, { headers: { authorization: 'Bearer farm-to-bob' } })
    expect(ok.json!.result).toMatchObject({ type: 'fulfill' })
  })

  it('answers the probe with an HMAC of the nonce only this process can compute', async () => {
    const res = await request(`${endpoint.url}${endpoint.secretPath}?probe=abc`)
    expect(await res.body.json()).toEqual({ probe: endpoint.probeAnswer('abc') })
    expect(endpoint.probeAnswer('abc')).not.toBe(guarded.probeAnswer('abc'))
  })

  it('serves SPSP', async () => {
    const res = await request(`${endpoint.url}/spsp`, { headers: { accept: 'application/spsp4+json' } })
    expect(res.headers['content-type']).toBe('application/spsp4+json')
    expect(await res.body.json()).toEqual({ destination_account: 'test.farm.bob.abc', shared_secret: Buffer.alloc(32, 7).toString('base64') })
    const none = await request(`${guarded.url}/spsp`)
    expect(none.statusCode).toBe(404)
    await none.body.dump()
  })
})
