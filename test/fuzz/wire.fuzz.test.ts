/**
 * Property-based fuzzing of a real worker over real sockets, against a real
 * Redis: generated and mutated OER packets at /accounts/:id/ilp (sync, and
 * async with generated Prefer, Callback-Url and Request-Id headers), callbacks
 * at /accounts/:id/ilp/callbacks, JSON-RPC requests and batches at /rpc, and
 * admin bodies. For every input: an answer within a bound, of the right kind
 * (HTTP 400 / an ILP Reject with the code the input calls for / a JSON-RPC
 * error), never an internal error (T00, -32603, 5xx); after every run the
 * balances of all accounts sum to what the run started with (plus what
 * deposits and withdrawals applied) and nothing is left in flight.
 *
 * Runs per property: the defaults below (the file takes well under a minute);
 * FUZZ_RUNS=<n> runs each property n times. A failure prints fast-check's seed
 * and path: FUZZ_SEED=<seed> FUZZ_PATH=<path> replays it.
 */
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { deserializeEnvelope, deserializeIlpPacket, deserializeIlpPrepare, type IlpPrepare, serializeIlpFulfill, serializeIlpPrepare, serializeIlpReject, Type } from 'ilp-packet'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { readPrepare } from '@ilp-farm/protocol'
import { isValidIlpAddress } from '../../src/util/address.js'
import { type CallbackServer, eventually, startCallbackServer } from '../helpers/async.js'
import { account, ADMIN_TOKEN, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { recordsLeft } from '../helpers/in-flight.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

const envRuns = process.env.FUZZ_RUNS === undefined ? undefined : Number(process.env.FUZZ_RUNS)
const seed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED)
const path = process.env.FUZZ_PATH
const params = (defaultRuns: number): fc.Parameters<unknown> => ({
  numRuns: envRuns ?? defaultRuns,
  ...(seed === undefined ? {} : { seed }),
  ...(path === undefined ? {} : { path }),
  // the seed and path are in the failure message; a shrunk counterexample is what to debug
  verbose: 1,
})

/** vitest's time for one property: its default, or an hour for FUZZ_RUNS (thousands of runs take minutes). */
const RUN_TIMEOUT_MS = envRuns === undefined ? 60_000 : 3_600_000

/** Every request must be answered within this (the peers answer at once; the farm holds nothing longer). */
const ANSWER_BOUND_MS = 5_000
const MAX_PACKET_AMOUNT = 1_000_000n
const MIN_MESSAGE_WINDOW_MS = 1_000
const MAX_BATCH = 10

let redis: TestRedis
let farm: TestFarm
let bob: TestPeer
let carol: TestPeer
/** Where alice's async prepares are answered (the only callback URLs alice may give). */
let callbacks: CallbackServer
let agent: Agent
/** The sum of every account's balance, as it must be whenever nothing is in flight. */
let expectedSum = 0n
const conditions: Buffer[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  carol = await startTestPeer(() => serializeIlpReject({ code: 'F99', triggeredBy: 'test.carol', message: 'no thanks', data: Buffer.alloc(0) }))
  callbacks = await startCallbackServer(() => 200)
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000000000000', maxPacketAmount: MAX_PACKET_AMOUNT.toString(), incoming: { token: 'alice-token', callbackUrls: [`${callbacks.url}/cb/`] } }),
      account('bob', { outgoing: { url: bob.url } }),
      account('carol', { outgoing: { url: carol.url } }),
    ],
    { minMessageWindowMs: MIN_MESSAGE_WINDOW_MS, rpc: { maxBatch: MAX_BATCH } },
  )
  agent = new Agent({ connections: 8, headersTimeout: ANSWER_BOUND_MS, bodyTimeout: ANSWER_BOUND_MS })
  for (let i = 0; i < 16; i++) conditions.push(knownCondition())
  expectedSum = await balanceSum()
})

afterAll(async () => {
  await agent?.close()
  await farm?.close()
  await bob?.close()
  await carol?.close()
  await callbacks?.close()
  await redis?.close()
})

// ------------------------------------------------------------------ plumbing

interface Answer {
  status: number
  body: Buffer
}

/** One request over a real socket; a request not answered within ANSWER_BOUND_MS fails the property. */
async function send(method: 'GET' | 'POST' | 'PUT', url: string, headers: Record<string, string>, body?: Buffer | string): Promise<Answer> {
  const started = Date.now()
  const res = await request(`${farm.url}${url}`, { method, headers, body, dispatcher: agent })
  const buf = Buffer.from(await res.body.arrayBuffer())
  expect(Date.now() - started).toBeLessThan(ANSWER_BOUND_MS)
  return { status: res.statusCode, body: buf }
}

/** Every account's balance summed, page by page (the admin fuzzing adds accounts). */
async function balanceSum(): Promise<bigint> {
  let sum = 0n
  let cursor: string | null = null
  do {
    const res = await send('GET', `/admin/accounts?limit=1000${cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`}`, { authorization: `Bearer ${ADMIN_TOKEN}` })
    const page = JSON.parse(res.body.toString()) as { accounts: Array<{ balance: string }>; nextCursor: string | null }
    for (const a of page.accounts) sum += BigInt(a.balance)
    cursor = page.nextCursor
  } while (cursor !== null)
  return sum
}

/** Money is conserved: nothing left in flight, and the balances sum to what they must. */
async function assertConserved(): Promise<void> {
  await eventually(async () => {
    expect(await recordsLeft(redis.client, farm.config.redis.keyPrefix)).toBe(0)
    expect(await balanceSum()).toBe(expectedSum)
  }, 5_000)
}

/** What the inputs got, printed after each property: shows the generators reach every kind of answer. */
function tally(): { add(key: string): void; count(key: string): number; print(name: string): void } {
  const counts = new Map<string, number>()
  return {
    add: (key) => void counts.set(key, (counts.get(key) ?? 0) + 1),
    count: (key) => counts.get(key) ?? 0,
    print: (name) => console.log(`${name}: ${[...counts].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} x${v}`).join(', ')}`),
  }
}

async function assertServing(): Promise<void> {
  const health = await send('GET', '/health', {})
  expect(health.status).toBe(200)
}

// ------------------------------------------------------------------ ILP packets

const amountArb = fc.oneof(
  { weight: 4, arbitrary: fc.bigInt(0n, 2_000n) },
  { weight: 1, arbitrary: fc.bigInt(MAX_PACKET_AMOUNT - 2n, MAX_PACKET_AMOUNT + 2n) },
  { weight: 1, arbitrary: fc.bigInt(0n, 2n ** 64n - 1n) },
)

const segmentArb = fc.stringMatching(/^[a-zA-Z0-9_~-]{1,12}$/)
const destinationArb = fc.oneof(
  fc.constantFrom(`${FARM_ADDRESS}.bob`, `${FARM_ADDRESS}.carol`, `${FARM_ADDRESS}.alice`, `${FARM_ADDRESS}.nobody`, 'test.elsewhere', 'peer.config', 'peer.route.control', 'g'),
  segmentArb.map((s) => `${FARM_ADDRESS}.bob.${s}`),
  fc.tuple(fc.constantFrom('g', 'test', 'private', 'example', 'peer', 'self', 'local', 'test1'), fc.array(segmentArb, { minLength: 0, maxLength: 4 })).map(([a, s]) => [a, ...s].join('.')),
  fc.string({ unit: 'binary-ascii', maxLength: 40 }),
)

/** Milliseconds from now: clearly expired, clearly in time, or near the minimum message window. */
const expiryOffsetArb = fc.oneof(
  fc.integer({ min: -100_000_000, max: -1_000 }),
  fc.integer({ min: 5_000, max: 30_000 }),
  fc.integer({ min: 0, max: 5_000 }),
  fc.integer({ min: 30_000, max: 400_000_000 }),
)

const prepareArb = fc.record({
  amount: amountArb,
  destination: destinationArb,
  condition: fc.oneof(fc.constantFrom(...Array.from({ length: 16 }, (_, i) => i)), fc.uint8Array({ minLength: 32, maxLength: 32 })),
  expiresInMs: expiryOffsetArb,
  data: fc.uint8Array({ maxLength: 64 }),
})
type PrepareSpec = typeof prepareArb extends fc.Arbitrary<infer T> ? T : never

function build(spec: PrepareSpec): { prepare: IlpPrepare; raw: Buffer } {
  const prepare: IlpPrepare = {
    amount: spec.amount.toString(),
    destination: spec.destination,
    executionCondition: typeof spec.condition === 'number' ? conditions[spec.condition]! : Buffer.from(spec.condition),
    expiresAt: new Date(Date.now() + spec.expiresInMs),
    data: Buffer.from(spec.data),
  }
  return { prepare, raw: serializeIlpPrepare(prepare) }
}

/** A byte-level change of a serialized packet: flip, set, cut, insert, or rewrite a length prefix. */
const mutationArb = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at: fc.nat(), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('length' as const), which: fc.constantFrom(1, 2, 3), prefix: fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 1 }), fc.uint8Array({ minLength: 2, maxLength: 6 }).map((b) => Uint8Array.from([0x80 | (b.length - 1), ...b.subarray(1)]))) }),
)
type Mutation = typeof mutationArb extends fc.Arbitrary<infer T> ? T : never

/** Offsets of the length prefixes of a Prepare: envelope (1), destination, data (data found by reading the destination's). */
function lengthPrefixAt(raw: Buffer, which: 1 | 2 | 3): number {
  if (which === 1) return 1
  const contentStart = raw[1]! < 0x80 ? 2 : 2 + (raw[1]! & 0x7f)
  const dest = contentStart + 8 + 17 + 32
  if (which === 2) return dest
  const len = raw[dest]! < 0x80 ? raw[dest]! : raw.readUIntBE(dest + 1, Math.min(6, raw[dest]! & 0x7f) || 1)
  const headerLen = raw[dest]! < 0x80 ? 1 : 1 + (raw[dest]! & 0x7f)
  return dest + headerLen + len
}

function mutate(raw: Buffer, mutations: Mutation[]): Buffer {
  let out = Buffer.from(raw)
  for (const m of mutations) {
    if (out.length === 0) break
    switch (m.kind) {
      case 'flip':
        out[m.at % out.length]! ^= 1 << m.bit
        break
      case 'set':
        out[m.at % out.length] = m.value
        break
      case 'truncate':
        out = out.subarray(0, m.at % out.length)
        break
      case 'insert': {
        const at = m.at % (out.length + 1)
        out = Buffer.concat([out.subarray(0, at), m.bytes, out.subarray(at)])
        break
      }
      case 'length': {
        const at = lengthPrefixAt(raw, m.which)
        if (at >= out.length) break
        const oldLen = out[at]! < 0x80 ? 1 : 1 + (out[at]! & 0x7f)
        out = Buffer.concat([out.subarray(0, at), m.prefix, out.subarray(Math.min(out.length, at + oldLen))])
        break
      }
    }
  }
  return out
}

/** What is sent: a generated Prepare, mutated or not, or bytes that only start like one. */
const ilpInputArb = fc.oneof(
  { weight: 4, arbitrary: fc.record({ spec: prepareArb, mutations: fc.constant([] as Mutation[]) }) },
  { weight: 5, arbitrary: fc.record({ spec: prepareArb, mutations: fc.array(mutationArb, { minLength: 1, maxLength: 4 }) }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => ({ bytes: Buffer.from(b) })) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => ({ bytes: Buffer.from([12, ...b]) })) },
)
type IlpInput = typeof ilpInputArb extends fc.Arbitrary<infer T> ? T : never

/**
 * The answers a body may get, from what ilp-packet makes of it: 400 for a body
 * that is not a Prepare envelope; Reject F01 for a Prepare envelope whose
 * fields do not read; otherwise the steps' outcome in their order (F01, F08,
 * the route, R02, the next hop's answer), where the input decides it.
 */
function expectedOutcomes(raw: Buffer, sentAt: number): { http400: boolean; codes?: Set<string>; fulfill?: boolean } {
  let type: number
  try {
    type = deserializeEnvelope(raw).type
  } catch {
    return { http400: true }
  }
  if (type !== Type.TYPE_ILP_PREPARE) return { http400: true }
  let p: IlpPrepare
  try {
    p = deserializeIlpPrepare(raw)
    if (Number.isNaN(p.expiresAt.getTime())) throw new Error('bad date')
  } catch {
    return { http400: false, codes: new Set(['F01']) }
  }
  if (!isValidIlpAddress(p.destination)) return { http400: false, codes: new Set(['F01']) }
  if (BigInt(p.amount) > MAX_PACKET_AMOUNT) return { http400: false, codes: new Set(['F08']) }
  if (p.destination.startsWith('peer.')) return { http400: false } // ILDCP, CCP: a Fulfill or a reject of their own
  const hop = p.destination === `${FARM_ADDRESS}.bob` || p.destination.startsWith(`${FARM_ADDRESS}.bob.`) ? 'bob' : p.destination === `${FARM_ADDRESS}.carol` || p.destination.startsWith(`${FARM_ADDRESS}.carol.`) ? 'carol' : undefined
  if (hop === undefined) return { http400: false } // no route (F02), or the sender's own address
  const left = p.expiresAt.getTime() - sentAt
  if (left < MIN_MESSAGE_WINDOW_MS - 500) return { http400: false, codes: new Set(['R02']) }
  if (left < MIN_MESSAGE_WINDOW_MS + 2_000) return { http400: false } // on the edge: R02 or forwarded
  if (hop === 'carol') return { http400: false, codes: new Set(['F99']) }
  const known = conditions.some((c) => c.equals(p.executionCondition))
  return known ? { http400: false, fulfill: true } : { http400: false, codes: new Set(['F99']) }
}

function rawOf(input: IlpInput): Buffer {
  if ('bytes' in input) return input.bytes
  return mutate(build(input.spec).raw, input.mutations)
}

describe('fuzz: ILP-over-HTTP', () => {
  it('the fast path reads every body exactly as ilp-packet does (in process)', () => {
    fc.assert(
      fc.property(ilpInputArb, (input) => {
        const raw = rawOf(input)
        const fast = readPrepare(raw)
        if (fast === undefined) return // the caller then asks ilp-packet itself
        const slow = deserializeIlpPrepare(raw)
        expect(fast.amount).toBe(slow.amount)
        expect(fast.destination).toBe(slow.destination)
        expect(fast.expiresAt.getTime()).toBe(slow.expiresAt.getTime())
        expect(fast.executionCondition.equals(slow.executionCondition)).toBe(true)
        expect(fast.data.equals(slow.data)).toBe(true)
      }),
      params(20_000),
    )
  }, RUN_TIMEOUT_MS)

  it('generated and mutated packets, up to 4 at once: each answered in time with 400 or the right ILP answer; money conserved', async () => {
    const seen = tally()
    await fc.assert(
      fc.asyncProperty(fc.array(ilpInputArb, { minLength: 1, maxLength: 4 }), async (inputs) => {
        await Promise.all(
          inputs.map(async (input) => {
            const raw = rawOf(input)
            const sentAt = Date.now()
            const expected = expectedOutcomes(raw, sentAt)
            const res = await send('POST', '/accounts/alice/ilp', { 'content-type': 'application/octet-stream', authorization: 'Bearer alice-token' }, raw)
            seen.add(res.status === 200 ? String(deserializeIlpPacket(res.body).type === Type.TYPE_ILP_FULFILL ? 'fulfill' : (deserializeIlpPacket(res.body).data as { code: string }).code) : `HTTP ${res.status}`)
            if (expected.http400) {
              expect(res.status).toBe(400)
              expect(JSON.parse(res.body.toString())).toHaveProperty('error')
              return
            }
            expect(res.status).toBe(200)
            const reply = deserializeIlpPacket(res.body)
            expect([Type.TYPE_ILP_FULFILL, Type.TYPE_ILP_REJECT]).toContain(reply.type)
            if (reply.type === Type.TYPE_ILP_REJECT) {
              const code = (reply.data as { code: string }).code
              expect(code).toMatch(/^[FTR][0-9][0-9]$/)
              expect(code).not.toBe('T00') // an unexpected error on the packet path
              expect(expected.fulfill ?? false).toBe(false)
              if (expected.codes) expect([...expected.codes]).toContain(code)
            } else {
              expect(expected.codes).toBeUndefined()
            }
          }),
        )
        await assertConserved()
      }),
      params(1_500),
    )
    seen.print('ILP answers')
    await assertServing()
  }, RUN_TIMEOUT_MS)
})

// ------------------------------------------------------------------ JSON-RPC

const base64Arb = fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64'))
/** ilp_sendPrepare params: well formed (a payment that moves money), or any field replaced by junk, or an unknown param added. */
const validSendPrepareArb = fc.record({
  amount: fc.bigInt(0n, 5_000n).map(String),
  destination: fc.constantFrom(`${FARM_ADDRESS}.bob`, `${FARM_ADDRESS}.bob.x`, `${FARM_ADDRESS}.carol`, 'test.nowhere'),
  executionCondition: fc.integer({ min: 0, max: 15 }).chain((i) => fc.constantFrom(conditions[i]?.toString('hex') ?? '', conditions[i]?.toString('base64') ?? '', conditions[i]?.toString('base64url') ?? '')),
  expiresAt: fc.integer({ min: 5_000, max: 30_000 }).map((ms) => new Date(Date.now() + ms).toISOString()),
  data: base64Arb,
})
const junkSendPrepareArb = fc.record(
  {
    amount: fc.oneof(amountArb.map(String), fc.string({ maxLength: 8 }), fc.integer(), fc.constantFrom('-5', '1e3', '18446744073709551616', ' 1')),
    destination: fc.oneof(destinationArb, fc.integer()),
    executionCondition: fc.oneof(fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('base64')), base64Arb, fc.string({ maxLength: 70 })),
    expiresAt: fc.oneof(
      expiryOffsetArb.map((ms) => new Date(Date.now() + ms).toISOString()),
      fc.string({ maxLength: 30 }),
      fc.constantFrom('2030-01-01T00:00:00', '+275760-09-13T00:00:00.000Z', '0000-01-01T00:00:00Z'),
      fc.integer(),
    ),
    data: fc.oneof(base64Arb, fc.string({ maxLength: 20 }), fc.constant(null)),
    account: fc.constant('bob'),
  },
  { requiredKeys: [] },
)
const sendPrepareParamsArb = fc.oneof(
  { weight: 3, arbitrary: validSendPrepareArb as fc.Arbitrary<Record<string, unknown>> },
  { weight: 3, arbitrary: fc.tuple(validSendPrepareArb, junkSendPrepareArb).map(([valid, junk]) => {
    // one or two fields of a good request replaced
    const keys = Object.keys(junk).slice(0, 2)
    return { ...valid, ...Object.fromEntries(keys.map((k) => [k, junk[k as keyof typeof junk]])) }
  }) },
  { weight: 1, arbitrary: junkSendPrepareArb as fc.Arbitrary<Record<string, unknown>> },
)

const methodArb = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('ilp_getBalance', 'ilp_getAccountInfo', 'ilp_quote', 'ilp_sendPrepare', 'ilp_sendPrepare', 'ilp_getRpcUrl', 'ilp_setRpcUrl', 'rpc.discover', 'ilp_redeemTicket', 'ilp_getSignupChallenge', 'ilp_signUp') },
  { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
  { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) },
)

const rpcRequestArb = fc.record(
  {
    jsonrpc: fc.oneof({ weight: 8, arbitrary: fc.constant('2.0') }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) }),
    id: fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null), fc.jsonValue({ maxDepth: 1 })),
    method: methodArb,
    params: fc.oneof(
      { weight: 4, arbitrary: sendPrepareParamsArb as fc.Arbitrary<unknown> },
      fc.constant({}),
      fc.constant([]),
      fc.record({ sourceAmount: fc.oneof(fc.string({ maxLength: 6 }), amountArb.map(String)), destination: destinationArb }, { requiredKeys: [] }) as fc.Arbitrary<unknown>,
      fc.record({ url: fc.oneof(fc.webUrl(), fc.string({ maxLength: 20 }), fc.constant(null)) }, { requiredKeys: [] }) as fc.Arbitrary<unknown>,
      fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<unknown>,
    ),
  },
  { requiredKeys: ['method'] },
)

/** An element of a body: a request object (mostly well formed) or any JSON value. */
const rpcElementArb = fc.oneof({ weight: 6, arbitrary: rpcRequestArb as fc.Arbitrary<unknown> }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) })

const rpcBodyArb = fc.oneof(
  { weight: 4, arbitrary: rpcElementArb.map((e) => ({ text: JSON.stringify(e) })) },
  { weight: 3, arbitrary: fc.array(rpcElementArb, { minLength: 0, maxLength: MAX_BATCH + 3 }).map((b) => ({ text: JSON.stringify(b) })) },
  {
    weight: 1,
    // JSON text cut or with a byte changed: mostly not JSON any more
    arbitrary: fc.tuple(rpcElementArb, fc.nat(), fc.constantFrom('', '{', ']', '"', ',', '\u0000', 'x')).map(([e, at, ins]) => {
      const text = JSON.stringify(e) ?? 'null'
      const i = at % (text.length + 1)
      return { text: text.slice(0, i) + ins + text.slice(i + 1) }
    }),
  },
  { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((text) => ({ text })) },
)

const rpcCallerArb = fc.record({
  token: fc.oneof({ weight: 8, arbitrary: fc.constant('alice-token' as string | null) }, { weight: 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.constant('wrong-token-123') }),
  contentType: fc.oneof({ weight: 10, arbitrary: fc.constant('application/json' as string | null) }, { weight: 1, arbitrary: fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', null, 'application/json-rpc') }),
})

const RPC_CODES = new Set([-32700, -32600, -32601, -32602, -32001, -32000, 1, 2])

interface RpcResponse {
  jsonrpc: unknown
  id: unknown
  result?: { type?: string; code?: string }
  error?: { code: unknown; message: unknown }
}

function checkResponse(r: RpcResponse): void {
  expect(r.jsonrpc).toBe('2.0')
  expect('result' in r !== 'error' in r).toBe(true)
  if (r.error) {
    expect(RPC_CODES).toContain(r.error.code) // never -32603, an internal error
    expect(typeof r.error.message).toBe('string')
  }
  if (r.result && (r.result.type === 'reject' || r.result.type === 'fulfill')) {
    expect(r.result.code).not.toBe('T00')
  }
}

/** A request object the farm answers (not a notification): anything but a well-formed request without an id. */
function wantsAnswer(e: unknown): boolean {
  if (typeof e !== 'object' || e === null || Array.isArray(e)) return true
  const r = e as Record<string, unknown>
  if ('id' in r) return true
  // params left out or null both mean none (docs/JSON-RPC.md)
  const paramsOk = !('params' in r) || typeof r.params === 'object'
  return !(r.jsonrpc === '2.0' && typeof r.method === 'string' && paramsOk)
}

function validId(id: unknown): boolean {
  return typeof id === 'string' || typeof id === 'number' || id === null
}

describe('fuzz: JSON-RPC', () => {
  it('generated and malformed requests and batches: each answered in time with a JSON-RPC answer of the right shape; money conserved', async () => {
    const seen = tally()
    await fc.assert(
      fc.asyncProperty(rpcBodyArb, rpcCallerArb, async ({ text }, caller) => {
        const headers: Record<string, string> = {}
        if (caller.contentType !== null) headers['content-type'] = caller.contentType
        if (caller.token !== null) headers.authorization = `Bearer ${caller.token}`
        const res = await send('POST', '/rpc', headers, text)
        seen.add(`HTTP ${res.status}`)
        if (res.status === 200) {
          const answers = JSON.parse(res.body.toString()) as RpcResponse | RpcResponse[]
          for (const a of Array.isArray(answers) ? answers : [answers]) seen.add(a.error ? String(a.error.code) : `result${a.result?.type ? ` ${a.result.type}${a.result.code ? ` ${a.result.code}` : ''}` : ''}`)
        }
        const isJsonType = caller.contentType === 'application/json' || caller.contentType === 'application/json-rpc'
        expect(res.status).toBeLessThan(500)
        if (!isJsonType) {
          expect(res.status).toBe(415)
          expect(JSON.parse(res.body.toString()).error.code).toBe(-32600)
          return
        }
        if (caller.token === 'wrong-token-123') {
          expect(res.status).toBe(401)
          expect(JSON.parse(res.body.toString()).error.code).toBe(-32001)
          return
        }
        let parsed: unknown
        let isJson = true
        try {
          parsed = JSON.parse(text)
        } catch {
          isJson = false
        }
        if (res.status === 204) {
          expect(res.body.length).toBe(0)
          expect(isJson).toBe(true)
          const elements = Array.isArray(parsed) ? parsed : [parsed]
          expect(elements.length).toBeGreaterThan(0)
          expect(elements.some(wantsAnswer)).toBe(false)
          return
        }
        expect([200, 401]).toContain(res.status)
        const answer = JSON.parse(res.body.toString()) as RpcResponse | RpcResponse[]
        if (!isJson) {
          expect(answer).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32700 } })
          return
        }
        if (Array.isArray(parsed) && (parsed.length === 0 || parsed.length > MAX_BATCH)) {
          expect(answer).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -32600 } })
          return
        }
        if (!Array.isArray(parsed)) {
          expect(Array.isArray(answer)).toBe(false)
          checkResponse(answer as RpcResponse)
          const req = parsed as Record<string, unknown>
          if (typeof req === 'object' && req !== null && validId(req.id)) {
            if ((answer as RpcResponse).error?.code !== -32600) expect((answer as RpcResponse).id).toEqual(req.id)
          }
          return
        }
        expect(Array.isArray(answer)).toBe(true)
        const answers = answer as RpcResponse[]
        expect(answers.length).toBe(parsed.filter(wantsAnswer).length)
        answers.forEach(checkResponse)
        // in the batch's order: each answered request with a valid id gets it back
        parsed.filter(wantsAnswer).forEach((req, i) => {
          const r = req as Record<string, unknown>
          if (typeof r === 'object' && r !== null && !Array.isArray(r) && validId(r.id) && answers[i]!.error?.code !== -32600) expect(answers[i]!.id).toEqual(r.id)
        })
        await assertConserved()
      }),
      params(2_500),
    )
    seen.print('JSON-RPC answers')
    await assertConserved()
    await assertServing()
  }, RUN_TIMEOUT_MS)
})

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
/** Request-Ids: from a small pool (so some are reused: 409 async, F00 sync), fresh, or not UUIDs. */
const requestIdArb = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 30 }).map((i) => `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`) },
  { weight: 3, arbitrary: fc.uuid() },
  { weight: 1, arbitrary: fc.uuid().map((u) => u.toUpperCase()) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 40 }) },
)

const asyncHeadersArb = fc.record(
  {
    prefer: fc.constantFrom('respond-async', 'RESPOND-ASYNC; wait=5', 'return=minimal', 'handling=lenient, respond-async', ''),
    callbackUrl: fc.oneof(
      { weight: 4, arbitrary: segmentArb.map((s) => `/cb/${s}`) },
      { weight: 1, arbitrary: fc.constantFrom('/other/x', '/cb', 'http://evil.example/cb/x', 'ftp://x/cb/', 'javascript:alert(1)', '', '/cb/../admin', '/cb/%2e%2e/x', '/cb/x#frag', '/cb/x#', 'http://user:pw@127.0.0.1/cb/x') },
      { weight: 1, arbitrary: fc.string({ unit: 'grapheme-ascii', maxLength: 30 }) },
    ),
    requestId: requestIdArb,
  },
  { requiredKeys: [] },
)

describe('fuzz: async ILP-over-HTTP and callbacks', () => {
  it('generated Prefer, Callback-Url and Request-Id headers on generated packets: 202 only for a good async request, the right 4xx otherwise; money conserved', async () => {
    const seen = tally()
    const used = new Set<string>()
    const maybe = new Set<string>()
    await fc.assert(
      fc.asyncProperty(asyncHeadersArb, ilpInputArb, async (h, input) => {
        const raw = rawOf(input)
        const headers: Record<string, string> = { 'content-type': 'application/octet-stream', authorization: 'Bearer alice-token' }
        if (h.prefer !== undefined) headers.prefer = h.prefer
        let callbackUrl: string | undefined
        if (h.callbackUrl !== undefined) headers['callback-url'] = callbackUrl = h.callbackUrl.startsWith('/') ? `${callbacks.url}${h.callbackUrl}` : h.callbackUrl
        if (h.requestId !== undefined) headers['request-id'] = h.requestId
        const sentAt = Date.now()
        const expected = expectedOutcomes(raw, sentAt)
        const res = await send('POST', '/accounts/alice/ilp', headers, raw)
        seen.add(`HTTP ${res.status}${res.status === 200 ? ` ${deserializeIlpPacket(res.body).type === Type.TYPE_ILP_FULFILL ? 'fulfill' : (deserializeIlpPacket(res.body).data as { code: string }).code}` : ''}`)
        const goodId = h.requestId !== undefined && UUID_RE.test(h.requestId)
        const id = goodId ? h.requestId!.toLowerCase() : ''
        // claimed for sure (409 / F00 next time), or perhaps (a refused body may or may not have claimed it first)
        const reused = used.has(id)
        const perhaps = maybe.has(id)
        const isAsync = h.callbackUrl !== undefined || (h.prefer ?? '').split(',').some((p) => p.split(';')[0]!.trim().toLowerCase() === 'respond-async')
        if (isAsync) {
          let url: URL | undefined
          try {
            url = new URL(callbackUrl ?? '')
          } catch {
            url = undefined
          }
          // an http(s) URL without credentials or fragment (one the farm may call)
          const httpUrl = url !== undefined && (url.protocol === 'http:' || url.protocol === 'https:') && url.username === '' && url.password === '' && url.hash === ''
          if (!httpUrl) return void expect(res.status).toBe(400)
          if (!url!.href.startsWith(`${callbacks.url}/cb/`)) return void expect(res.status).toBe(403)
          if (!goodId) return void expect(res.status).toBe(400)
          if (res.status === 202) used.add(id)
          else maybe.add(id)
          if (expected.http400) return void expect(reused || perhaps ? [400, 409] : [400]).toContain(res.status)
          if (reused) return void expect(res.status).toBe(409)
          expect(perhaps ? [202, 409] : [202]).toContain(res.status)
        } else {
          if (h.requestId !== undefined && !goodId) return void expect(res.status).toBe(400)
          if (expected.http400) return void expect(res.status).toBe(400)
          expect(res.status).toBe(200)
          const reply = deserializeIlpPacket(res.body)
          const code = reply.type === Type.TYPE_ILP_REJECT ? (reply.data as { code: string }).code : 'fulfill'
          expect(code).not.toBe('T00')
          // the Request-Id is claimed once the packet is routed and in time: it reached the next hop, or was a
          // duplicate (an F00 of its own: ILDCP's and CCP's F00s come before the claim, and claim nothing)
          const duplicate = code === 'F00' && (reply.data as { message: string }).message === 'duplicate request id'
          if (goodId && (code === 'F99' || duplicate || (code === 'fulfill' && expected.fulfill === true))) used.add(id)
          if (reused || perhaps) return void expect(['F00', 'F01', 'F02', 'F08', 'R02', ...(perhaps ? ['F99', 'fulfill'] : [])]).toContain(code)
          if (reply.type === Type.TYPE_ILP_REJECT) {
            if (expected.codes) expect([...expected.codes]).toContain(code)
            expect(expected.fulfill ?? false).toBe(false)
          } else {
            expect(expected.codes).toBeUndefined()
          }
        }
        await assertConserved()
      }),
      params(800),
    )
    seen.print('async ILP answers')
    // every async prepare taken was answered at its Callback-Url
    await eventually(() => expect(callbacks.hits.length).toBe(seen.count('HTTP 202')), 10_000)
    await assertConserved()
  }, RUN_TIMEOUT_MS)

  it('generated callbacks from a next hop (bob): 400 for any Request-Id nothing is waiting on or a body that is not a reply, 401 without its token; nothing moves', async () => {
    const replyArb = fc.oneof(
      fc.record({ fulfillment: fc.uint8Array({ minLength: 32, maxLength: 32 }), data: fc.uint8Array({ maxLength: 20 }) }).map((f) => serializeIlpFulfill({ fulfillment: Buffer.from(f.fulfillment), data: Buffer.from(f.data) })),
      fc.record({ code: fc.constantFrom('F99', 'T00', 'R00', 'ZZZ'), message: fc.string({ maxLength: 20 }) }).map((r) => serializeIlpReject({ code: r.code, triggeredBy: 'test.bob', message: r.message, data: Buffer.alloc(0) })),
      fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
    )
    const seen = tally()
    await fc.assert(
      fc.asyncProperty(requestIdArb, replyArb, fc.nat(4), fc.boolean(), async (requestId, reply, cut, withToken) => {
        const body = cut === 0 ? reply : reply.subarray(0, Math.max(0, reply.length - cut))
        const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'request-id': requestId }
        if (withToken) headers.authorization = 'Bearer bob-token'
        const res = await send('POST', '/accounts/bob/ilp/callbacks', headers, body)
        seen.add(`HTTP ${res.status}`)
        expect(res.status).toBe(withToken ? 400 : 401)
        expect(JSON.parse(res.body.toString())).toHaveProperty('error')
        await assertConserved()
      }),
      params(500),
    )
    seen.print('callback answers')
  }, RUN_TIMEOUT_MS)
})

it('the worker still forwards a payment after the packet, JSON-RPC and async fuzzing', async () => {
  const prepare = { destination: `${FARM_ADDRESS}.bob`, amount: '7', executionCondition: conditions[0]!, expiresAt: new Date(Date.now() + 10_000), data: randomBytes(8) }
  const res = await send('POST', '/accounts/alice/ilp', { 'content-type': 'application/octet-stream', authorization: 'Bearer alice-token' }, serializeIlpPrepare(prepare))
  expect(deserializeIlpPacket(res.body).type).toBe(Type.TYPE_ILP_FULFILL)
  await assertConserved()
})

// ------------------------------------------------------------------ admin API

const amountFieldArb = fc.oneof(
  fc.bigInt(1n, 1_000_000n).map(String),
  fc.constantFrom('0', '-1', '1.5', '', ' 1', '01', '1e3', '18446744073709551616', '99999999999999999999999999999999999999'),
  fc.integer(),
  fc.jsonValue({ maxDepth: 1 }),
)

const adminCallArb = fc.oneof(
  fc.record({
    kind: fc.constantFrom('deposits' as const, 'withdrawals' as const),
    id: fc.oneof({ weight: 6, arbitrary: fc.constantFrom('alice', 'bob', 'carol') }, { weight: 1, arbitrary: fc.constantFrom('nobody', '%20', 'a'.repeat(300)) }),
    // keys from a small set, so some repeat: a retry (applied once) or a key reused for another amount (422)
    key: fc.oneof({ weight: 6, arbitrary: fc.integer({ min: 0, max: 200 }).map((i) => `key-${i}`) }, fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }), fc.constantFrom(undefined, '', 'k'.repeat(201))),
    body: fc.oneof(
      { weight: 4, arbitrary: fc.record({ amount: fc.bigInt(1n, 100n).map(String) }) as fc.Arbitrary<unknown> },
      { weight: 3, arbitrary: fc.record({ amount: amountFieldArb }, { requiredKeys: [] }) as fc.Arbitrary<unknown> },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    ),
  }),
  fc.record({
    kind: fc.constant('quote' as const),
    body: fc.oneof(
      fc.tuple(
        fc.record({ from: fc.constant('alice'), destination: fc.constantFrom(`${FARM_ADDRESS}.bob`, `${FARM_ADDRESS}.carol.x`), sourceAmount: fc.bigInt(0n, 10_000n).map(String) }),
        fc.record({ from: fc.constantFrom('alice', 'bob', 'nobody', ''), destination: destinationArb, sourceAmount: amountFieldArb, destinationAmount: amountFieldArb }, { requiredKeys: [] }),
        fc.nat(3),
      ).map(([valid, junk, n]) => ({ ...valid, ...Object.fromEntries(Object.entries(junk).slice(0, n)) })) as fc.Arbitrary<unknown>,
      fc.jsonValue({ maxDepth: 2 }),
    ),
  }),
  fc.record({
    kind: fc.constant('account' as const),
    body: fc.oneof(
      // a valid new account with up to three fields replaced by generated ones
      fc.tuple(
        fc.record({ id: segmentArb.map((s) => `fz${s}`), relation: fc.constantFrom('child', 'peer'), assetCode: fc.constantFrom('USD', 'EUR'), assetScale: fc.integer({ min: 0, max: 9 }) }).map((a) => ({ ...a, incoming: { token: `${a.id}-fuzz-token-0123` } })),
        fc.record(
          {
            id: fc.oneof(fc.constantFrom('alice', '', 'a.b', 'x'.repeat(200)), fc.jsonValue({ maxDepth: 0 })),
            relation: fc.string({ maxLength: 6 }),
            assetCode: fc.string({ maxLength: 6 }),
            assetScale: fc.oneof(fc.integer(), fc.string({ maxLength: 3 })),
            minBalance: amountFieldArb,
            maxBalance: amountFieldArb,
            maxPacketAmount: amountFieldArb,
            incoming: fc.oneof(fc.record({ token: fc.string({ minLength: 0, maxLength: 40 }) }), fc.jsonValue({ maxDepth: 1 })),
            outgoing: fc.oneof(fc.record({ url: fc.oneof(fc.webUrl(), fc.string({ maxLength: 20 })) }, { requiredKeys: [] }), fc.jsonValue({ maxDepth: 1 })),
            routes: fc.oneof(fc.array(destinationArb, { maxLength: 3 }), fc.jsonValue({ maxDepth: 1 })),
          },
          { requiredKeys: [] },
        ),
        fc.nat(3),
      ).map(([valid, junk, n]) => ({ ...valid, ...Object.fromEntries(Object.entries(junk).slice(0, n)) })) as fc.Arbitrary<unknown>,
      fc.jsonValue({ maxDepth: 2 }),
    ),
  }),
  fc.record({ kind: fc.constant('route' as const), prefix: fc.oneof(destinationArb, fc.string({ maxLength: 20 })), body: fc.oneof(fc.record({ account: fc.constantFrom('bob', 'alice', 'nobody', '') }) as fc.Arbitrary<unknown>, fc.jsonValue({ maxDepth: 1 })) }),
  fc.record({ kind: fc.constant('list' as const), query: fc.string({ maxLength: 30 }) }),
)

/** 414: a path parameter longer than the router takes (an account id over 100 characters). */
const ADMIN_STATUSES = new Set([200, 201, 204, 400, 404, 409, 413, 414, 415, 422])

describe('fuzz: admin API', () => {
  it('generated deposits, withdrawals, quotes, accounts, routes and listings: 2xx or 4xx with a JSON error; balances move only by what was applied', async () => {
    const seen = tally()
    await fc.assert(
      fc.asyncProperty(adminCallArb, fc.boolean(), async (call, rawText) => {
        const headers: Record<string, string> = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' }
        let res: Answer
        if (call.kind === 'list') {
          res = await send('GET', `/admin/accounts?${encodeURI(call.query)}`, headers)
        } else {
          // a body sent as JSON text, or (rawText) that text cut short
          const json = JSON.stringify(call.body) ?? 'null'
          const body = rawText ? json.slice(0, Math.max(0, json.length - 1)) : json
          if (call.kind === 'deposits' || call.kind === 'withdrawals') {
            if (call.key !== undefined) headers['idempotency-key'] = call.key
            res = await send('POST', `/admin/accounts/${encodeURIComponent(call.id)}/${call.kind}`, headers, body)
            if (res.status === 200) {
              const applied = JSON.parse(res.body.toString()) as { applied: boolean; amount: string }
              if (applied.applied) expectedSum += call.kind === 'deposits' ? BigInt(applied.amount) : -BigInt(applied.amount)
            }
          } else if (call.kind === 'quote') {
            res = await send('POST', '/admin/quote', headers, body)
          } else if (call.kind === 'account') {
            res = await send('POST', '/admin/accounts', headers, body)
          } else if (call.kind === 'route') {
            res = await send('PUT', `/admin/routes/${encodeURIComponent(call.prefix)}`, headers, body)
          } else {
            throw new Error(`unknown call ${call.kind}`)
          }
        }
        seen.add(`${call.kind} ${res.status}`)
        expect(ADMIN_STATUSES).toContain(res.status)
        if (res.body.length > 0) {
          const parsed = JSON.parse(res.body.toString()) as Record<string, unknown>
          if (res.status >= 400) expect(parsed).toHaveProperty('error')
        }
        await assertConserved()
      }),
      params(1_500),
    )
    seen.print('admin answers')
    await assertServing()
  }, RUN_TIMEOUT_MS)
})
