import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { account, ADMIN_TOKEN, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Guessing the admin token: failed logins on the dashboard, /admin and
 * /metrics are counted per IP across workers and refused past the limit
 * (even with the right token); a weak or published admin token is refused
 * at start on a non-loopback bind; the session cookie is Secure and
 * __Host- named when the farm is reached over https.
 */
let redis: TestRedis
let workerA: TestFarm
let workerB: TestFarm
let behindTls: TestFarm
// Another caller address: all of 127.0.0.0/8 is loopback.
const fromOtherIp = new Agent({ localAddress: '127.0.0.2' })

beforeAll(async () => {
  redis = await startTestRedis()
  const keyPrefix = `auth${Math.random().toString(36).slice(2, 8)}:`
  const extra = { redis: { keyPrefix }, admin: { token: ADMIN_TOKEN, failedAuth: { perIp: 3, windowMs: 3_600_000 } /* a run almost never straddles two windows */ } }
  workerA = await startTestFarm(redis.url, [account('alice')], extra, { shard: 0 })
  workerB = await startTestFarm(redis.url, [account('alice')], extra, { shard: 1 })
  behindTls = await startTestFarm(redis.url, [account('alice')], { http: { host: '127.0.0.1', port: 0, publicUrl: 'https://farm.example' } })
})

afterAll(async () => {
  for (const farm of [workerA, workerB, behindTls]) await farm?.close()
  await fromOtherIp.close()
  await redis?.close()
})

async function call(url: string, opts: { method?: 'GET' | 'POST'; token?: string; body?: unknown; cookie?: string; dispatcher?: Agent } = {}) {
  const headers: Record<string, string> = {}
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`
  if (opts.body !== undefined) headers['content-type'] = 'application/json'
  if (opts.cookie !== undefined) headers.cookie = opts.cookie
  const res = await request(url, { method: opts.method ?? 'GET', headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), dispatcher: opts.dispatcher })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text }
}

describe('failed logins', () => {
  it('are limited per IP across workers and surfaces; past the limit even the right token waits', async () => {
    // no token at all guesses nothing and is not counted
    for (let i = 0; i < 5; i++) expect((await call(`${workerA.url}/admin/accounts`)).status).toBe(401)
    expect((await call(`${workerA.url}/admin/accounts`, { token: 'guess-1' })).status).toBe(401)
    expect((await call(`${workerB.url}/metrics`, { token: 'guess-2' })).status).toBe(401)
    expect((await call(`${workerA.url}/dashboard/login`, { method: 'POST', body: { token: 'guess-3' } })).status).toBe(401)
    for (const attempt of [
      () => call(`${workerB.url}/admin/accounts`, { token: ADMIN_TOKEN }),
      () => call(`${workerA.url}/metrics`, { token: ADMIN_TOKEN }),
      () => call(`${workerB.url}/dashboard/login`, { method: 'POST', body: { token: ADMIN_TOKEN } }),
    ]) {
      const refused = await attempt()
      expect(refused.status).toBe(429)
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(3_600)
      expect(refused.text).toMatch(/too many failed logins/)
    }
    // another address is not held back
    expect((await call(`${workerA.url}/admin/accounts`, { token: ADMIN_TOKEN, dispatcher: fromOtherIp })).status).toBe(200)
    expect((await call(`${workerB.url}/metrics`, { token: ADMIN_TOKEN, dispatcher: fromOtherIp })).status).toBe(200)
  })
})

describe('the admin token at start', () => {
  const config = (host: string, token: string) => ({ ilpAddress: 'test.farm', http: { host }, admin: { token }, accounts: [account('alice')] })

  it('refuses the example token and short tokens on a non-loopback bind, with a clear config error', () => {
    for (const token of ['change-me-admin-token', 'short-token']) {
      for (const host of ['0.0.0.0', '::', '192.0.2.10']) {
        let error: unknown
        try {
          parseConfig(config(host, token), 'farm.yaml', {})
        } catch (err) {
          error = err
        }
        expect(error, `${host} ${token}`).toBeInstanceOf(ConfigError)
        expect(String((error as Error).message)).toMatch(/admin\.token.*at least 16 characters and not the example's/s)
      }
    }
  })

  it('takes them on loopback, and a strong token anywhere', () => {
    for (const host of ['127.0.0.1', '::1', 'localhost']) expect(parseConfig(config(host, 'change-me-admin-token'), 'farm.yaml', {}).admin.token).toBe('change-me-admin-token')
    expect(parseConfig(config('0.0.0.0', 'a'.repeat(32)), 'farm.yaml', {}).http.host).toBe('0.0.0.0')
  })
})

describe('the dashboard session cookie', () => {
  it('is Secure and __Host- named behind a TLS proxy (https publicUrl), and works', async () => {
    const login = await call(`${behindTls.url}/dashboard/login`, { method: 'POST', body: { token: ADMIN_TOKEN } })
    expect(login.status).toBe(204)
    const cookie = String(login.headers['set-cookie'])
    expect(cookie).toMatch(/^__Host-ilpfarm_dashboard=[^;]+; Path=\/; .*HttpOnly; SameSite=Strict; Secure$/)
    const session = cookie.split(';')[0]!
    expect((await call(`${behindTls.url}/dashboard/accounts/alice`, { cookie: session })).status).toBe(200)
    expect((await call(`${behindTls.url}/dashboard/accounts/alice`, { cookie: session.replace('__Host-', '') })).status).toBe(401)
  })

  it('keeps its plain name and no Secure over plain http', async () => {
    const login = await call(`${workerA.url}/dashboard/login`, { method: 'POST', body: { token: ADMIN_TOKEN }, dispatcher: fromOtherIp })
    expect(login.status).toBe(204)
    const cookie = String(login.headers['set-cookie'])
    expect(cookie).toMatch(/^ilpfarm_dashboard=[^;]+; Path=\/dashboard;/)
    expect(cookie).not.toMatch(/Secure/)
  })
})
