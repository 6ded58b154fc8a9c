// Scoped operator tokens: each scope reaches its own routes and is refused (403, the scope named) elsewhere.
import { createHash } from 'node:crypto'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { ADMIN_ROUTE_SCOPES, adminRouteScope } from '../../src/http/admin.js'
import type { Scope } from '../../src/http/scopes.js'
import { killAllClis, cleanEnv, runCli } from '../helpers/cli.js'
import { account, ADMIN_TOKEN, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

const TOKENS: Record<Exclude<Scope, 'admin'> | 'admin', string> = {
  read: 'scoped-read-token-0001',
  metrics: 'scoped-metrics-token-01',
  accounts: 'scoped-accounts-token-1',
  money: 'scoped-money-token-0001',
  routes: 'scoped-routes-token-001',
  admin: 'scoped-admin-token-0001',
}
/** Given to the farm only as its SHA-256. */
const HASHED_TOKEN = 'hashed-read-and-money-token'

let redis: TestRedis
let farm: TestFarm
// Other caller addresses (all of 127.0.0.0/8 is loopback): guesses from here do not hold back the other tests.
const guesser = new Agent({ localAddress: '127.0.0.3' })

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [account('alice'), account('bob', { outgoing: { url: 'http://127.0.0.1:9/ilp' } })], {
    admin: {
      token: ADMIN_TOKEN,
      tokens: [
        ...Object.entries(TOKENS).map(([scope, token]) => ({ name: `only-${scope}`, token, scopes: [scope as Scope] })),
        { name: 'hashed', tokenHash: createHash('sha256').update(HASHED_TOKEN).digest('hex'), scopes: ['read', 'money'] },
      ],
      failedAuth: { perIp: 3, windowMs: 3_600_000 },
    },
  })
})

afterAll(async () => {
  await killAllClis()
  await farm?.close()
  await guesser.close()
  await redis?.close()
})

interface Call {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE'
  path: string
  body?: unknown
  headers?: Record<string, string>
}

async function call(c: Call, token: string | undefined, dispatcher?: Agent) {
  const headers: Record<string, string> = { ...c.headers }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  if (c.body !== undefined) headers['content-type'] = 'application/json'
  const res = await request(`${farm.url}${c.path}`, { method: c.method, headers, body: c.body === undefined ? undefined : JSON.stringify(c.body), dispatcher })
  const text = await res.body.text()
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    json = text
  }
  return { status: res.statusCode, json, headers: res.headers }
}

let keys = 0
/** One request per scope that succeeds (2xx) with the right token; each call is new (idempotency keys, ids). */
const reach: Record<Exclude<Scope, 'admin'>, () => Call[]> = {
  read: () => [
    { method: 'GET', path: '/admin/accounts' },
    { method: 'GET', path: '/admin/accounts/alice' },
    { method: 'GET', path: '/admin/workers' },
    { method: 'GET', path: '/admin/routes' },
    { method: 'GET', path: '/admin/inflight' },
    { method: 'GET', path: '/admin/settlements' },
  ],
  metrics: () => [{ method: 'GET', path: '/metrics' }],
  accounts: () => {
    const id = `c${++keys}`
    return [
      { method: 'POST', path: '/admin/accounts', body: { id, relation: 'child', assetCode: 'USD', assetScale: 2 } },
      { method: 'POST', path: `/admin/accounts/${id}/token` },
      { method: 'DELETE', path: `/admin/accounts/${id}` },
    ]
  },
  money: () => [{ method: 'POST', path: '/admin/accounts/alice/deposits', body: { amount: '5' }, headers: { 'idempotency-key': `k${++keys}` } }],
  routes: () => [
    { method: 'PUT', path: '/admin/routes/g.scoped', body: { account: 'bob' } },
    { method: 'DELETE', path: '/admin/routes/g.scoped' },
  ],
}
const NARROW = Object.keys(reach) as Exclude<Scope, 'admin'>[]

async function expectReaches(token: string, calls: Call[]) {
  for (const c of calls) {
    const r = await call(c, token)
    expect(r.status, `${c.method} ${c.path}: ${JSON.stringify(r.json)}`).toBeGreaterThanOrEqual(200)
    expect(r.status, `${c.method} ${c.path}: ${JSON.stringify(r.json)}`).toBeLessThan(300)
  }
}

async function expectRefused(token: string, c: Call, scope: Scope) {
  const r = await call(c, token)
  expect(r.status, `${c.method} ${c.path}`).toBe(403)
  expect(r.json).toEqual({ error: `this token lacks the scope ${scope}`, scope })
}

describe('the route table', () => {
  it('names a scope for every /admin route the farm serves, and no route it does not serve', () => {
    for (const key of Object.keys(ADMIN_ROUTE_SCOPES)) {
      const [method, url] = key.split(' ') as [string, string]
      expect(farm.worker.app.hasRoute({ method: method as 'GET', url }), key).toBe(true)
    }
  })

  it('refuses a route without an entry (the farm would not start)', () => {
    expect(() => adminRouteScope('POST', '/admin/something-new')).toThrow(/names no scope/)
    expect(adminRouteScope('HEAD', '/admin/accounts')).toBe('read')
  })
})

describe.each(NARROW)('a token with only %s', (scope) => {
  it('reaches its routes', async () => {
    await expectReaches(TOKENS[scope], reach[scope]())
  })

  it('is refused, the scope named, on a route of each other scope', async () => {
    for (const other of NARROW.filter((s) => s !== scope)) await expectRefused(TOKENS[scope], reach[other]()[0]!, other)
  })
})

describe('admin.token and a token with admin', () => {
  it('reach every scope', async () => {
    for (const token of [ADMIN_TOKEN, TOKENS.admin]) {
      for (const scope of NARROW) await expectReaches(token, reach[scope]())
      await expectReaches(token, [{ method: 'POST', path: '/admin/tickets', body: { account: { relation: 'child', assetCode: 'USD', assetScale: 2 } } }])
    }
  })
})

describe('a tokenHash entry', () => {
  it('works with its scopes, and only them', async () => {
    await expectReaches(HASHED_TOKEN, [...reach.read(), ...reach.money()])
    await expectRefused(HASHED_TOKEN, reach.accounts()[0]!, 'accounts')
    await expectRefused(HASHED_TOKEN, reach.metrics()[0]!, 'metrics')
  })
})

describe('unknown and missing tokens', () => {
  it('are 401', async () => {
    expect((await call({ method: 'GET', path: '/admin/accounts' }, undefined)).status).toBe(401)
    expect((await call({ method: 'GET', path: '/metrics' }, undefined)).status).toBe(401)
    // the SHA-256 given as a token is not the token
    expect((await call({ method: 'GET', path: '/admin/accounts' }, createHash('sha256').update(HASHED_TOKEN).digest('hex'), guesser)).status).toBe(401)
  })
})

describe('the failed-auth limit', () => {
  it('counts unknown tokens, not 403s; past the limit a scoped token waits too', async () => {
    const other = new Agent({ localAddress: '127.0.0.4' })
    try {
      // refusals for a missing scope guess nothing: not counted
      for (let i = 0; i < 5; i++) expect((await call(reach.money()[0]!, TOKENS.read, other)).status).toBe(403)
      expect((await call({ method: 'GET', path: '/admin/accounts' }, TOKENS.read, other)).status).toBe(200)
      for (let i = 0; i < 3; i++) expect((await call({ method: 'GET', path: '/admin/accounts' }, `guess-${i}`, other)).status).toBe(401)
      const refused = await call({ method: 'GET', path: '/admin/accounts' }, TOKENS.read, other)
      expect(refused.status).toBe(429)
      expect((await call({ method: 'GET', path: '/metrics' }, TOKENS.metrics, other)).status).toBe(429)
    } finally {
      await other.close()
    }
  })
})

describe('the dashboard', () => {
  async function login(token: string) {
    const res = await request(`${farm.url}/dashboard/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token }) })
    const text = await res.body.text()
    return { status: res.statusCode, text, cookie: String(res.headers['set-cookie'] ?? '').split(';')[0]! }
  }

  it('logs in with a read token and shows its views', async () => {
    const session = await login(TOKENS.read)
    expect(session.status).toBe(204)
    const detail = await request(`${farm.url}/dashboard/accounts/alice`, { headers: { cookie: session.cookie } })
    expect(detail.statusCode).toBe(200)
    expect(await detail.body.text()).toContain('"alice"')
    const controller = new AbortController()
    const events = await request(`${farm.url}/dashboard/events`, { headers: { cookie: session.cookie }, signal: controller.signal })
    expect(events.statusCode).toBe(200)
    expect(String(events.headers['content-type'])).toMatch(/text\/event-stream/)
    controller.abort()
    await events.body.text().catch(() => undefined)
  })

  it('refuses a token without read, naming the scope', async () => {
    for (const token of [TOKENS.money, TOKENS.metrics]) {
      const refused = await login(token)
      expect(refused.status).toBe(403)
      expect(JSON.parse(refused.text)).toEqual({ error: 'this token lacks the scope read', scope: 'read' })
    }
    expect((await login(TOKENS.admin)).status).toBe(204)
  })
})

describe('the CLI', () => {
  async function cli(args: string[]) {
    const run = runCli([...args, '--url', farm.url, '--token', TOKENS.read], { env: cleanEnv() })
    const { code } = await run.waitForExit(25_000)
    return { code, stdout: run.stdout(), stderr: run.stderr() }
  }

  it('with a read token lists accounts and fails on deposit with the 403 message; --help names the scopes', async () => {
    const [list, deposit, help] = await Promise.all([cli(['accounts', 'list']), cli(['deposit', 'alice', '10']), cli(['routes', '--help'])])
    expect(list.code, list.stderr).toBe(0)
    expect(list.stdout).toMatch(/alice/)
    expect(deposit.code).toBe(1)
    expect(deposit.stderr).toContain('(HTTP 403): this token lacks the scope money')
    expect(deposit.stderr).toContain('use a token with the scope money')
    // each command names its scopes
    expect(help.stdout).toContain('Token scopes: routes list: read; routes add: routes; routes remove: routes')
  }, 60_000)
})

describe('the config', () => {
  const config = (host: string, admin: Record<string, unknown>) => ({ ilpAddress: 'test.farm', http: { host }, admin, accounts: [account('alice')] })
  const refusal = (input: unknown): string => {
    try {
      parseConfig(input, 'farm.yaml', {})
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError)
      return (err as Error).message
    }
    throw new Error('the config was taken')
  }

  it('refuses a weak scoped token on a non-loopback bind, takes it on loopback, and cannot check a tokenHash', () => {
    for (const token of ['short-token', 'change-me-admin-token']) {
      const tokens = [{ name: 'ci', token, scopes: ['read'] }]
      expect(refusal(config('0.0.0.0', { tokens }))).toMatch(/admin\.tokens\[0\]\.token: .*at least 16 characters/)
      expect(parseConfig(config('127.0.0.1', { tokens }), 'farm.yaml', {}).admin.tokens[0]!.name).toBe('ci')
    }
    const hashed = [{ name: 'ci', tokenHash: createHash('sha256').update('short').digest('hex'), scopes: ['read'] }]
    expect(parseConfig(config('0.0.0.0', { tokens: hashed }), 'farm.yaml', {}).admin.tokens).toHaveLength(1)
  })

  it('refuses one token in two entries, in whatever form', () => {
    const strong = 'a-strong-token-of-32-characters!'
    const hash = createHash('sha256').update(strong).digest('hex')
    expect(refusal(config('127.0.0.1', { tokens: [{ name: 'a', token: strong, scopes: ['read'] }, { name: 'b', token: strong, scopes: ['money'] }] }))).toMatch(/same token as admin\.tokens a/)
    expect(refusal(config('127.0.0.1', { token: strong, tokens: [{ name: 'a', tokenHash: hash, scopes: ['read'] }] }))).toMatch(/same token as admin\.token/)
    expect(refusal(config('127.0.0.1', { tokens: [{ name: 'a', token: strong, scopes: ['read'] }, { name: 'a', token: `${strong}2`, scopes: ['read'] }] }))).toMatch(/another token is named "a"/)
  })

  it('refuses an unknown scope, no scopes, and both or neither of token and tokenHash', () => {
    expect(refusal(config('127.0.0.1', { tokens: [{ name: 'a', token: 'x', scopes: ['write'] }] }))).toMatch(/scopes/)
    expect(refusal(config('127.0.0.1', { tokens: [{ name: 'a', token: 'x', scopes: [] }] }))).toMatch(/at least one of/)
    expect(refusal(config('127.0.0.1', { tokens: [{ name: 'a', scopes: ['read'] }] }))).toMatch(/exactly one of token and tokenHash/)
  })
})
