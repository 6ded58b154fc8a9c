import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { searchPow } from '@ilp-farm/protocol'
import { account, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Open sign-up under a flood: asking for challenges stores nothing per
 * challenge, challenges and sign-ups are limited per caller IP and farm-wide
 * (through Redis, so every worker counts together), and signup.maxAccounts
 * holds across two workers.
 */
interface RpcAnswer {
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: { reason?: string; retryAfterMs?: number } }
}

const signupAccount = { assetCode: 'USD', assetScale: 6, minBalance: '0', maxBalance: '5000' }
const accounts = [account('local')]
// An hour's window: a test run almost never straddles two fixed windows.
const off = { windowMs: 3_600_000, challengesPerIp: 0, challenges: 0, signupsPerIp: 0, signups: 0 }

let redis: TestRedis
let unlimited: TestFarm
let limited: TestFarm
let signups: TestFarm
let capA: TestFarm
let capB: TestFarm
// Another caller address: all of 127.0.0.0/8 is loopback.
const fromOtherIp = new Agent({ localAddress: '127.0.0.2' })

beforeAll(async () => {
  redis = await startTestRedis()
  const signup = (limits: Record<string, number>, extra: Record<string, unknown> = {}) => ({
    signup: { enabled: true, difficulty: 1, account: signupAccount, limits: { ...off, ...limits }, ...extra },
  })
  unlimited = await startTestFarm(redis.url, accounts, signup({}))
  limited = await startTestFarm(redis.url, accounts, signup({ challengesPerIp: 5, challenges: 8 }))
  signups = await startTestFarm(redis.url, accounts, signup({ signupsPerIp: 2 }))
  const keyPrefix = `cap${Math.random().toString(36).slice(2, 8)}:`
  capA = await startTestFarm(redis.url, accounts, { redis: { keyPrefix }, ...signup({}, { maxAccounts: 3 }) }, { shard: 0 })
  capB = await startTestFarm(redis.url, accounts, { redis: { keyPrefix }, ...signup({}, { maxAccounts: 3 }) }, { shard: 1 })
})

afterAll(async () => {
  for (const farm of [unlimited, limited, signups, capA, capB]) await farm?.close()
  await fromOtherIp.close()
  await redis?.close()
})

async function rpc(url: string, method: string, params: unknown = {}, dispatcher?: Agent): Promise<RpcAnswer> {
  const res = await request(`${url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
    dispatcher,
  })
  return (await res.body.json()) as RpcAnswer
}

/** The farm's keys, but for the metrics each worker flushes on its own schedule. */
async function keysOf(farm: TestFarm): Promise<string[]> {
  return (await redis.client.keys(`${farm.config.redis.keyPrefix}*`)).filter((k) => !k.includes(':metrics')).sort()
}

async function solved(farm: TestFarm): Promise<{ challenge: string; nonce: string }> {
  const challenge = (await rpc(farm.url, 'ilp_getSignupChallenge')).result!.challenge as string
  return { challenge, nonce: searchPow(challenge, 1, 0, 1, 10_000)! }
}

describe('sign-up challenges', () => {
  it('a flood of challenge requests writes no Redis keys', async () => {
    await rpc(unlimited.url, 'ilp_getSignupChallenge') // the first makes the farm's shared HMAC key
    const before = await keysOf(unlimited)
    const answers = await Promise.all(Array.from({ length: 300 }, () => rpc(unlimited.url, 'ilp_getSignupChallenge')))
    expect(answers.every((a) => typeof a.result?.challenge === 'string')).toBe(true)
    expect(new Set(answers.map((a) => a.result!.challenge)).size).toBe(300)
    expect(await keysOf(unlimited)).toEqual(before)
    expect(before.filter((k) => !k.endsWith('signup:hmac-key') && k.includes('signup'))).toEqual([])
  })

  it('a challenge changed in any part, or from another farm, is not taken', async () => {
    const { challenge, nonce } = await solved(unlimited)
    const [v, expiry, random, mac] = challenge.split('.')
    const later = `${v}.${(parseInt(expiry!, 36) + 3_600_000).toString(36)}.${random}.${mac}`
    for (const forged of [later, `${v}.${expiry}.${random}x.${mac}`, `${challenge}x`]) {
      const n = searchPow(forged, 1, 0, 1, 10_000)!
      expect((await rpc(unlimited.url, 'ilp_signUp', { challenge: forged, nonce: n })).error?.data?.reason, forged).toBe('invalid-challenge')
    }
    expect((await rpc(limited.url, 'ilp_signUp', { challenge, nonce })).error?.data?.reason).toBe('invalid-challenge')
    expect((await rpc(unlimited.url, 'ilp_signUp', { challenge, nonce })).result?.id).toBeDefined()
    expect((await rpc(unlimited.url, 'ilp_signUp', { challenge, nonce })).error?.data?.reason).toBe('invalid-challenge')
  })

  it('limits challenges per IP and farm-wide with a clear JSON-RPC error; the counters are the only keys', async () => {
    for (let i = 0; i < 5; i++) expect((await rpc(limited.url, 'ilp_getSignupChallenge')).result?.challenge).toBeDefined()
    const perIp = await rpc(limited.url, 'ilp_getSignupChallenge')
    expect(perIp.error).toMatchObject({ code: 2, data: { reason: 'rate-limited' } })
    expect(perIp.error!.message).toMatch(/too many sign-up challenges from 127\.0\.0\.1: at most 5 per 3600000 ms/)
    expect(perIp.error!.data!.retryAfterMs).toBeGreaterThan(0)
    expect(perIp.error!.data!.retryAfterMs).toBeLessThanOrEqual(3_600_000)
    // another address has its own count, until the farm-wide 8 (the refused one counted too)
    for (let i = 0; i < 2; i++) expect((await rpc(limited.url, 'ilp_getSignupChallenge', {}, fromOtherIp)).result?.challenge).toBeDefined()
    const farmWide = await rpc(limited.url, 'ilp_getSignupChallenge', {}, fromOtherIp)
    expect(farmWide.error).toMatchObject({ code: 2, data: { reason: 'rate-limited' } })
    expect(farmWide.error!.message).toMatch(/too many sign-up challenges on this farm: at most 8/)
    const counters = (await keysOf(limited)).filter((k) => k.includes(':signup:rate:'))
    expect(counters).toHaveLength(3) // farm, 127.0.0.1, 127.0.0.2
    for (const key of counters) expect(await redis.client.pttl(key)).toBeGreaterThan(0)
  })
})

describe('sign-ups', () => {
  it('limits sign-ups per IP', async () => {
    for (let i = 0; i < 2; i++) expect((await rpc(signups.url, 'ilp_signUp', await solved(signups))).result?.id).toBeDefined()
    const third = await rpc(signups.url, 'ilp_signUp', await solved(signups))
    expect(third.error).toMatchObject({ code: 2, data: { reason: 'rate-limited' } })
    expect(third.error!.message).toMatch(/too many sign-ups from 127\.0\.0\.1/)
    expect((await rpc(signups.url, 'ilp_signUp', await solved(signups), fromOtherIp)).result?.id).toBeDefined()
  })

  it('signup.maxAccounts holds across two workers', async () => {
    const solutions = await Promise.all(Array.from({ length: 8 }, (_, i) => solved(i % 2 === 0 ? capA : capB)))
    const answers = await Promise.all(solutions.map((s, i) => rpc((i % 2 === 0 ? capB : capA).url, 'ilp_signUp', s)))
    expect(answers.filter((a) => a.result?.id !== undefined)).toHaveLength(3)
    const refused = answers.filter((a) => a.error !== undefined)
    expect(refused).toHaveLength(5)
    for (const a of refused) expect(a.error).toMatchObject({ code: 2, data: { reason: 'signup-full' }, message: expect.stringMatching(/at most 3 accounts/) })
    const origins = await Promise.all(
      answers.filter((a) => a.result).map(async (a) => (await request(`${capA.url}/admin/accounts/${String(a.result!.id)}`, { headers: { authorization: 'Bearer admin-token-for-tests' } })).statusCode),
    )
    expect(origins).toEqual([200, 200, 200])
  })
})
