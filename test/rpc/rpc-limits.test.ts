import { serializeIlpReject } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * What one POST /rpc may ask for: a batch's length, how many of its requests
 * run at once, how large its answer grows; and JSON content types only.
 */
let redis: TestRedis
let farm: TestFarm
let slow: TestPeer
let inFlight = 0
let mostInFlight = 0

interface RpcAnswer {
  jsonrpc: string
  id: string | number | null
  result?: unknown
  error?: { code: number; message: string }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  redis = await startTestRedis()
  // counts how many prepares of one batch reach the next hop at the same time
  slow = await startTestPeer(async () => {
    inFlight++
    mostInFlight = Math.max(mostInFlight, inFlight)
    await sleep(30)
    inFlight--
    return serializeIlpReject({ code: 'F99', triggeredBy: 'test.slow', message: 'no', data: Buffer.alloc(0) })
  })
  farm = await startTestFarm(
    redis.url,
    [account('alice', { minBalance: '-1000000' }), account('slow', { outgoing: { url: slow.url } })],
    { rpc: { maxBatch: 100, batchConcurrency: 4, maxResponseBytes: 200_000 } },
  )
})

afterAll(async () => {
  await farm?.close()
  await slow?.close()
  await redis?.close()
})

async function post(body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await request(`${farm.url}/rpc`, { method: 'POST', headers, body })
  return { status: res.statusCode, contentType: res.headers['content-type'], text: await res.body.text() }
}

const discover = (id: number) => ({ jsonrpc: '2.0', id, method: 'rpc.discover' })

describe('POST /rpc: batch limits', () => {
  it('a batch of 20,000 is refused whole, fast, with -32600, and the worker does not grow', async () => {
    const body = JSON.stringify(Array.from({ length: 20_000 }, (_, i) => discover(i % 10)))
    expect(body.length).toBeGreaterThan(900_000)
    expect(body.length).toBeLessThan(1_000_000) // under the body limit: the batch cap is what refuses it
    const rssBefore = process.memoryUsage().rss
    const started = Date.now()
    const res = await post(body)
    const tookMs = Date.now() - started
    const grewMb = (process.memoryUsage().rss - rssBefore) / 1e6
    console.log(`20,000-entry batch refused in ${tookMs} ms; RSS grew ${grewMb.toFixed(1)} MB`)
    expect(res.status).toBe(200)
    const answer = JSON.parse(res.text) as RpcAnswer
    expect(answer).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600, message: 'Invalid Request: a batch of 20000 requests; at most 100 (none was run)' },
    })
    expect(tookMs).toBeLessThan(1_000)
    expect(grewMb).toBeLessThan(100)
  })

  it('a batch at the cap runs, its members at most batchConcurrency at a time', async () => {
    const batch = Array.from({ length: 20 }, (_, i) => ({
      jsonrpc: '2.0',
      id: i,
      method: 'ilp_sendPrepare',
      params: { amount: '1', destination: `${FARM_ADDRESS}.slow`, executionCondition: knownCondition().toString('hex'), expiresAt: new Date(Date.now() + 10_000).toISOString() },
    }))
    mostInFlight = 0
    const res = await post(JSON.stringify(batch), { 'content-type': 'application/json', authorization: 'Bearer alice-token' })
    const answers = JSON.parse(res.text) as RpcAnswer[]
    expect(answers.map((a) => a.id)).toEqual(batch.map((b) => b.id))
    for (const a of answers) expect(a.result).toMatchObject({ type: 'reject', code: 'F99' })
    expect(mostInFlight).toBeGreaterThan(1)
    expect(mostInFlight).toBeLessThanOrEqual(4)

    const full = await post(JSON.stringify(Array.from({ length: 100 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ilp_getAccountInfo' }))), {
      'content-type': 'application/json',
      authorization: 'Bearer alice-token',
    })
    expect((JSON.parse(full.text) as RpcAnswer[]).every((a) => a.result !== undefined)).toBe(true)
  })

  it('once the answers reach maxResponseBytes, the requests not yet run are answered -32000 and not run', async () => {
    const one = (await post(JSON.stringify(discover(1)))).text.length
    const batch = Array.from({ length: 100 }, (_, i) => discover(i))
    const res = await post(JSON.stringify(batch))
    const answers = JSON.parse(res.text) as RpcAnswer[]
    expect(answers.map((a) => a.id)).toEqual(batch.map((b) => b.id))
    const ran = answers.filter((a) => a.result !== undefined)
    const refused = answers.filter((a) => a.error?.code === -32000)
    expect(ran.length + refused.length).toBe(100)
    // the cap is passed by at most the requests in flight when it was reached
    expect(ran.length).toBeGreaterThanOrEqual(Math.ceil(200_000 / one))
    expect(ran.length).toBeLessThanOrEqual(Math.ceil(200_000 / one) + 4)
    expect(refused[0]!.error!.message).toMatch(/^Response too large/)
    expect(res.text.length).toBeLessThan(200_000 + 5 * one)
  })

  it('rpc.discover answers the same document every time', async () => {
    const a = JSON.parse((await post(JSON.stringify(discover(1)))).text) as RpcAnswer
    const b = JSON.parse((await post(JSON.stringify(discover(2)))).text) as RpcAnswer
    expect(a.result).toEqual(b.result)
  })
})

describe('POST /rpc: content types', () => {
  const body = JSON.stringify(discover(1))

  it('application/json (with a charset) and application/json-rpc are read', async () => {
    for (const type of ['application/json', 'application/json; charset=utf-8', 'application/json-rpc']) {
      const res = await post(body, { 'content-type': type })
      expect(res.status).toBe(200)
      expect((JSON.parse(res.text) as RpcAnswer).result).toBeDefined()
    }
  })

  it('text/plain, a form or no Content-Type: HTTP 415 with a JSON-RPC error body', async () => {
    for (const headers of [{ 'content-type': 'text/plain' }, { 'content-type': 'application/x-www-form-urlencoded' }, {} as Record<string, string>]) {
      const res = await post(body, headers)
      expect(res.status).toBe(415)
      expect(res.contentType).toMatch(/^application\/json/)
      expect(JSON.parse(res.text)).toEqual({
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: 'Invalid Request: Content-Type must be application/json' },
      })
    }
  })
})
