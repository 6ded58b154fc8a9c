// JSON-RPC params are checked against the schemas rpc.discover publishes: each method, each param, against a real farm.
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { knownCondition } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

let redis: TestRedis
let farm: TestFarm

interface RpcError {
  code: number
  message: string
}
interface DiscoveredParam {
  name: string
  required: boolean
  schema: Record<string, unknown>
}
interface DiscoveredMethod {
  name: string
  params: DiscoveredParam[]
}

beforeAll(async () => {
  redis = await startTestRedis()
  // bob cannot be reached: nothing a call here lets through could be forwarded
  farm = await startTestFarm(redis.url, [account('alice'), account('bob', { outgoing: { url: 'http://127.0.0.1:9/ilp' } })])
})

afterAll(async () => {
  await farm?.close()
  await redis?.close()
})

async function call(method: string, params: unknown): Promise<{ result?: unknown; error?: RpcError }> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer alice-token' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return (await res.body.json()) as { result?: unknown; error?: RpcError }
}

/** Params each method takes, all of the right form: a test changes one of them at a time. */
const VALID: Record<string, Record<string, unknown>> = {
  ilp_quote: { destination: `${FARM_ADDRESS}.bob`, sourceAmount: '1' },
  ilp_sendPrepare: {
    amount: '1',
    destination: `${FARM_ADDRESS}.bob`,
    executionCondition: knownCondition().toString('hex'),
    expiresAt: '2030-01-01T00:00:00.000Z',
    data: 'aGVsbG8=',
  },
  ilp_setRpcUrl: { url: null },
  ilp_redeemTicket: { ticket: 'not-a-ticket', id: 'newcomer' },
  ilp_signUp: { challenge: 'not-a-challenge', nonce: '42', id: 'newcomer' },
  ilp_pay: { paymentPointer: '$pay.example', sourceAmount: '1', wait: false },
  ilp_getPayment: { id: 'out-none' },
  ilp_getPayments: { cursor: '1', limit: 1 },
}

/** A JSON value of no type the schema takes (a string, or a string or null; else a number or a boolean). */
function wrongType(schema: Record<string, unknown>): unknown {
  const types = JSON.stringify(schema)
  expect(types, 'a param schema of a type this test does not know yet').not.toMatch(/"type":"(object|array)"/)
  return /"type":"(integer|number|boolean)"/.test(types) ? 'text' : 12345
}

let methods: DiscoveredMethod[] = []

describe('the schemas rpc.discover publishes', () => {
  beforeAll(async () => {
    const discovered = await call('rpc.discover', undefined)
    methods = (discovered.result as { methods: DiscoveredMethod[] }).methods
  })

  it('cover every method with params, and each such method has valid params here', () => {
    const withParams = methods.filter((m) => m.params.length > 0).map((m) => m.name)
    expect(withParams.sort()).toEqual(Object.keys(VALID).sort())
  })

  it('refuse a param no method declares, naming it and what the method takes', async () => {
    for (const m of methods) {
      const answer = await call(m.name, { ...VALID[m.name], surplus: 1 })
      expect(answer.error, m.name).toEqual({
        code: -32602,
        message: `Invalid params: unknown param "surplus" (${m.name} takes ${m.params.length === 0 ? 'none' : m.params.map((p) => p.name).join(', ')})`,
      })
    }
  })

  it('refuse each required param missing, naming it', async () => {
    for (const m of methods) {
      for (const p of m.params.filter((q) => q.required)) {
        const params = { ...VALID[m.name] }
        delete params[p.name]
        const answer = await call(m.name, params)
        expect(answer.error?.code, `${m.name} without ${p.name}`).toBe(-32602)
        expect(answer.error?.message, `${m.name} without ${p.name}`).toMatch(new RegExp(`^Invalid params: ${p.name}: is required \\(.+\\)$`))
      }
    }
  })

  it('refuse each param of the wrong JSON type, naming it and what it must be', async () => {
    for (const m of methods) {
      for (const p of m.params) {
        const answer = await call(m.name, { ...VALID[m.name], [p.name]: wrongType(p.schema) })
        expect(answer.error?.code, `${m.name} ${p.name}`).toBe(-32602)
        expect(answer.error?.message, `${m.name} ${p.name}`).toMatch(new RegExp(`^Invalid params: ${p.name}: must be .+`))
      }
    }
  })
})

describe('formats and bounds of the published schemas', () => {
  const refusal = async (method: string, change: Record<string, unknown>) => (await call(method, { ...VALID[method], ...change })).error

  it('ilp_quote and ilp_sendPrepare: amounts are UInt64 decimal strings, destinations ILP addresses', async () => {
    for (const amount of ['-1', '01', '1.5', '18446744073709551616', '']) {
      expect(await refusal('ilp_quote', { sourceAmount: amount })).toEqual({ code: -32602, message: 'Invalid params: sourceAmount: must be a UInt64 as a decimal string' })
      expect(await refusal('ilp_sendPrepare', { amount })).toEqual({ code: -32602, message: 'Invalid params: amount: must be a UInt64 as a decimal string' })
    }
    expect(await refusal('ilp_quote', { sourceAmount: undefined, destinationAmount: '18446744073709551616' })).toMatchObject({ message: 'Invalid params: destinationAmount: must be a UInt64 as a decimal string' })
    expect(await refusal('ilp_quote', { destination: 'not an address' })).toEqual({ code: -32602, message: 'Invalid params: destination: must be an ILP address (RFC 15)' })
    // a rule over two params, which the schemas of each cannot say
    expect(await refusal('ilp_quote', { destinationAmount: '1' })).toEqual({ code: -32602, message: 'Invalid params: give exactly one of sourceAmount and destinationAmount' })
    expect(await refusal('ilp_quote', { sourceAmount: undefined })).toEqual({ code: -32602, message: 'Invalid params: give exactly one of sourceAmount and destinationAmount' })
  })

  it('ilp_sendPrepare: condition, expiry and data of the published forms; nothing moved', async () => {
    const before = await balanceOf(farm.url, 'alice')
    for (const executionCondition of ['abcd', 'g'.repeat(64), 'A'.repeat(44)]) {
      expect(await refusal('ilp_sendPrepare', { executionCondition })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: executionCondition: must be 32 bytes/) })
    }
    for (const expiresAt of ['tomorrow', '2030-13-45T00:00:00Z', '2030-01-01T00:00:00']) {
      expect(await refusal('ilp_sendPrepare', { expiresAt })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: expiresAt: must be an ISO 8601 timestamp/) })
    }
    expect(await refusal('ilp_sendPrepare', { data: '***' })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: data: must be base64/) })
    expect(await balanceOf(farm.url, 'alice')).toBe(before)
  })

  it('ilp_setRpcUrl: a URL of at most 2048 characters, or null', async () => {
    for (const url of ['not a url', `https://a.example/${'x'.repeat(2048)}`]) {
      expect(await refusal('ilp_setRpcUrl', { url })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: url: must be an http\(s\) URL/) })
    }
  })

  it('the onboarding methods: non-empty tickets and challenges, a decimal nonce', async () => {
    expect(await refusal('ilp_redeemTicket', { ticket: '' })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: ticket: must be a non-empty string of at most 200 characters/) })
    expect(await refusal('ilp_signUp', { challenge: 'c'.repeat(201) })).toMatchObject({ code: -32602, message: expect.stringMatching(/^Invalid params: challenge: must be a non-empty string/) })
    for (const nonce of ['12a', '', '1'.repeat(21)]) {
      expect(await refusal('ilp_signUp', { nonce })).toEqual({ code: -32602, message: 'Invalid params: nonce: must be a decimal string of 1 to 20 digits' })
    }
  })
})
