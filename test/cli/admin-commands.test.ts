import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IlpPacketType } from 'ilp-packet'
import { serializeIldcpRequest } from 'ilp-protocol-ildcp'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { freePort } from '../../src/farm/embedded-redis.js'
import { Keys } from '../../src/store/keys.js'
import { cleanEnv, killAllClis, runCli } from '../helpers/cli.js'
import { account, ADMIN_TOKEN, adminGet, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { plantPacket, unplantPacket } from '../helpers/in-flight.js'

/**
 * The admin subcommands of `ilp-farm` as an operator runs them: the CLI a real
 * child process, the farm a real worker on a real socket, Redis real.
 */

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

let redis: TestRedis
let peer: TestPeer
let farm: TestFarm
let tmp: string
/** The environment that locates the farm (the precedence tests make their own). */
let farmEnv: NodeJS.ProcessEnv

/** Boot ids no worker has: packets "owned" by a dead process. */
const DEAD_OWNER = '0-deaddeaddead'

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-cli-admin-'))
  redis = await startTestRedis()
  peer = await startTestPeer(fulfillKnown)
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000', maxBalance: '5000000', maxPacketAmount: '100000' }),
      account('upstream', { relation: 'peer', outgoing: { url: peer.url, token: 'to-upstream' }, routes: ['test.upstream'] }),
      account('carol', { minBalance: '-10', maxBalance: '100' }),
      // prefunded, 2.55 USD of a 1000 USD range: not "near" anything
      account('dana', { minBalance: '0', maxBalance: '1000000000', incoming: { token: 'dana-token', callbackUrls: ['http://127.0.0.1:'] } }),
      // on credit with 5% of its credit line left after the withdrawal below: near its minBalance
      account('erin', { minBalance: '-1000', maxBalance: '1000' }),
    ],
    // The sweeper would refund the dead owner's packets planted below: keep it out of the way.
    { farm: { sweepIntervalMs: 600_000 } },
  )
  farmEnv = cleanEnv({ ILP_FARM_URL: farm.url, ILP_FARM_ADMIN_TOKEN: ADMIN_TOKEN })
  // One fulfilled payment alice → upstream: balances -250 / 250, one success on the route.
  const paid = await sendIlp(farm.url, 'alice', prepareTo('test.upstream.bob', '250', knownCondition()))
  expect(paid.packet?.type).toBe(IlpPacketType.Fulfill)
  for (const [id, kind, amount] of [['dana', 'deposits', '2550000'], ['erin', 'withdrawals', '950']] as const) {
    const res = await request(`${farm.url}/admin/accounts/${id}/${kind}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'idempotency-key': `setup-${id}` },
      body: JSON.stringify({ amount }),
    })
    expect(res.statusCode, await res.body.text()).toBeLessThan(300)
  }
  // dana is online: its RPC URL registered
  const set = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { authorization: 'Bearer dana-token', 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_setRpcUrl', params: { url: `${peer.url}/rpc` } }),
  })
  expect(await set.body.json()).toMatchObject({ result: { url: `${peer.url}/rpc` } })
}, 60_000)

afterEach(async () => {
  await killAllClis()
})

afterAll(async () => {
  await killAllClis()
  await farm?.close()
  await peer?.close()
  await redis?.close()
  rmSync(tmp, { recursive: true, force: true })
})

async function cli(args: string[], env: NodeJS.ProcessEnv = farmEnv): Promise<Result> {
  const run = runCli(args, { env })
  const { code } = await run.waitForExit(25_000)
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

/** Runs several CLIs at once (each pays the tsx start-up; together they fit in a test's time). */
function clis<T extends string[][]>(...runs: [...T]): Promise<{ [K in keyof T]: Result }> {
  return Promise.all(runs.map((args) => cli(args))) as Promise<{ [K in keyof T]: Result }>
}

function ok(r: Result): Result {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0)
  return r
}

/** The table row whose first cell is `first` (cli-table3 draws │ between cells). */
function row(table: string, first: string): string[] {
  const line = table.split('\n').find((l) => l.startsWith('│') && l.split('│')[1]?.trim() === first)
  expect(line, `no row "${first}" in:\n${table}`).toBeDefined()
  return line!.split('│').slice(1, -1).map((c) => c.trim())
}

async function api<T>(path: string): Promise<T> {
  const { status, json } = await adminGet<T>(farm.url, path)
  expect(status).toBe(200)
  return json
}

describe('reading the farm', () => {
  it('accounts list: a table of balances and limits; --json is every page of GET /admin/accounts as one', async () => {
    const [table, json] = await clis(['accounts', 'list'], ['accounts', 'list', '--json'])
    ok(table)
    expect(row(table.stdout, 'id')).toEqual(['id', 'relation', 'asset/scale', 'balance', 'min', 'max', 'room to max', 'max packet', 'min→max', 'origin', 'reached by'])
    expect(row(table.stdout, 'alice')).toEqual(['alice', 'child', 'USD/6', '-250', '-1000000', '5000000', '5000250', '100000', '17%', 'config', 'OFFLINE'])
    expect(row(table.stdout, 'upstream').slice(0, 4)).toEqual(['upstream', 'peer', 'USD/6', '250'])
    expect(row(table.stdout, 'upstream').slice(8)).toEqual(['no max', 'config', 'outgoing url'])
    expect(row(table.stdout, 'dana').slice(8)).toEqual(['0.3%', 'config', 'rpc url'])
    expect(row(table.stdout, 'erin').slice(8)).toEqual(['2.5% (NEAR MIN)', 'config', 'OFFLINE'])
    expect(table.stdout).toContain('5 accounts')
    expect(JSON.parse(ok(json).stdout)).toEqual(await api('/admin/accounts?limit=1000'))
  })

  it('balance: the sign spelled out; --json is GET /admin/accounts/{id}', async () => {
    const [alice, upstream, json] = await clis(['balance', 'alice'], ['balance', 'upstream'], ['balance', 'alice', '--json'])
    expect(ok(alice).stdout).toContain('alice (child): balance -250: alice owes the farm 250 (0.000250 USD)')
    expect(alice.stdout).toMatch(/min balance: +-1000000 \(-1\.000000 USD\), can still send 999750/)
    expect(alice.stdout).toMatch(/max balance: +5000000 \(5\.000000 USD\), can still receive 5000250/)
    expect(ok(upstream).stdout).toContain('upstream (peer): balance 250: the farm owes upstream 250 (0.000250 USD)')
    expect(alice.stdout).toMatch(/defined in: +the config file/)
    expect(alice.stdout).toMatch(/reached by: +nothing: offline, no RPC URL registered and no outgoing URL \(packets for it get T01\)/)
    expect(upstream.stdout).toMatch(/reached by: +its outgoing URL/)
    expect(JSON.parse(ok(json).stdout)).toEqual(await api('/admin/accounts/alice'))
  })

  it('routes: candidates with counts; --json is GET /admin/routes', async () => {
    const [table, json] = await clis(['routes'], ['routes', '--json'])
    expect(ok(table).stdout).toContain('routing policy: success-rate')
    const upstream = row(table.stdout, 'test.upstream')
    expect(upstream.slice(0, 7)).toEqual(['test.upstream', 'upstream', 'static (config)', 'unbounded', '250', '1', '0'])
    expect(upstream[8]).toBe('ok')
    // the policy's smoothed score, under its own name beside the counts: (1 + 1) / (1 + 2) at most, never a percentage
    expect(row(table.stdout, 'prefix').slice(5, 8)).toEqual(['fulfilled', 'failed', 'score'])
    expect(upstream[7]).toMatch(/^0\.\d\d$/)
    expect(Number(upstream[7])).toBeGreaterThanOrEqual(0.5)
    expect(Number(upstream[7])).toBeLessThanOrEqual(0.67)
    // children are routed by address, in no table row
    expect(table.stdout).toContain('children: test.farm.<id> goes to child <id> by its address')
    expect(table.stdout).not.toContain('test.farm.alice')
    // successRate decays with time between the two reads; everything else is the API's answer as it came.
    const withoutRates = (v: unknown) => JSON.parse(JSON.stringify(v, (k, x: unknown) => (k === 'successRate' ? undefined : x))) as unknown
    expect(withoutRates(JSON.parse(ok(json).stdout))).toEqual(withoutRates(await api('/admin/routes')))
  })

  it('workers: the live worker, its host and the leader; --json is GET /admin/workers', async () => {
    const [table, json] = await clis(['workers'], ['workers', '--json'])
    const now = await api<{ leader: string; hosts: unknown[]; workers: Array<{ hostId: string; shard: number; bootId: string; pid: number }> }>('/admin/workers')
    const hostId = now.workers[0]!.hostId
    expect(now.hosts).toEqual([{ hostId, workers: 1, leader: true }])
    expect(ok(table).stdout).toContain(`1 live worker on 1 host; leader: ${now.leader} on ${hostId}`)
    const worker = row(table.stdout, hostId)
    expect(worker[1]).toBe('0')
    expect(worker[2]).toBe(now.leader)
    expect(worker[3]).toBe(String(process.pid))
    expect(worker[6]).toMatch(/^\d+ ms ago$|^\d+\.\d s ago$/)
    expect(worker[7]).toBe('leader')
    const parsed = JSON.parse(ok(json).stdout) as typeof now
    expect(parsed.leader).toBe(now.leader)
    expect(parsed.workers.map((w) => w.bootId)).toEqual(now.workers.map((w) => w.bootId))
  })
})

describe('packets in flight and inspect', () => {
  const keys = () => new Keys(farm.config.redis.keyPrefix)
  const now = Date.now()
  const planted = [
    { incomingAccount: 'alice', packetId: 'cli-expired', outgoingAccount: 'upstream', bootId: DEAD_OWNER, shard: 0, expiresAtMs: now - 5_000, inAmount: '100', outAmount: '100' },
    { incomingAccount: 'alice', packetId: 'cli-pending', outgoingAccount: 'upstream', bootId: DEAD_OWNER, shard: 0, expiresAtMs: now + 120_000, inAmount: '40', outAmount: '40' },
  ]

  beforeAll(async () => {
    // A packet past its expiry and one still pending, both owned by a worker that has no heartbeat:
    // what a crash leaves behind (lua/lib/entry.lua).
    for (const p of planted) await plantPacket(redis.client, keys(), p)
  })

  afterAll(async () => {
    for (const p of planted) await unplantPacket(redis.client, keys(), p)
  })

  it('inflight: owners, time to expiry, flags; --json is GET /admin/inflight', async () => {
    const [table, json] = await clis(['inflight'], ['inflight', '--json'])
    expect(ok(table).stdout).toContain('2 packets in flight')
    const expired = row(table.stdout, 'cli-expired')
    expect(expired.slice(0, 6)).toEqual(['cli-expired', 'alice', '100', 'upstream', '100', `0/${DEAD_OWNER}`])
    expect(expired[6]).toMatch(/^\d+\.\d s ago$/)
    expect(expired[7]).toBe('EXPIRED, OWNER DEAD')
    const pending = row(table.stdout, 'cli-pending')
    expect(pending[6]).toMatch(/^in 1 min \d+ s$|^in \d+\.\d s$/)
    expect(pending[7]).toBe('OWNER DEAD')
    expect(JSON.parse(ok(json).stdout)).toEqual(await api('/admin/inflight'))
  })

  it('inspect: every section, and what looks wrong', async () => {
    const [dump, json] = await clis(['inspect'], ['inspect', '--json'])
    const out = ok(dump).stdout
    expect(out).toContain(`ilp-farm inspect of ${farm.url}`)
    expect(out).toContain('farm address:   test.farm')
    expect(out).toContain('health:         ok (HTTP 200, redis up)')
    for (const section of ['== Workers ==', '== Accounts ==', '== Routes ==', '== In flight ==']) expect(out).toContain(section)
    expect(row(out, 'alice')[3]).toBe('-250')
    expect(row(out, 'test.upstream')[5]).toBe('1')
    expect(row(out, 'cli-expired')[7]).toBe('EXPIRED, OWNER DEAD')
    expect(out).toMatch(
      new RegExp(`! packet cli-expired from alice to upstream \\(100\\) expired \\d+\\.\\d s ago and is still in flight; owner ${DEAD_OWNER} has no heartbeat`),
    )
    expect(out).toContain(`- packet cli-pending from alice to upstream (40): owner ${DEAD_OWNER} has no heartbeat`)

    const parsed = JSON.parse(ok(json).stdout) as Record<string, unknown> & { problems: Array<{ level: string; message: string }> }
    expect(Object.keys(parsed)).toEqual(['url', 'at', 'ilpAddress', 'health', 'workers', 'accounts', 'routes', 'inflight', 'settlements', 'problems'])
    expect(parsed.ilpAddress).toBe('test.farm')
    expect(parsed.health).toEqual({ status: 200, body: { status: 'ok', redis: 'up' } })
    // The first page only (of up to 1,000): all of them here.
    expect(parsed.accounts).toEqual(await api('/admin/accounts?limit=1000'))
    expect(out).toMatch(/== Accounts ==\n\d+ accounts\n/)
    expect(parsed.inflight).toEqual(await api('/admin/inflight'))
    expect(parsed.problems.filter((p) => p.level === 'problem').map((p) => p.message)).toEqual([
      expect.stringContaining('packet cli-expired from alice'),
    ])
  })

  it('inspect flags an account at its limit', async () => {
    // carol: minBalance -10; a withdrawal of 10 leaves her exactly at it.
    ok(await cli(['withdraw', 'carol', '10', '--key', 'cli-carol-to-min']))
    const { stdout } = ok(await cli(['inspect']))
    expect(row(stdout, 'carol')[8]).toBe('0% (AT MIN)')
    expect(stdout).toContain('! carol is at its minBalance (-10): packets from it are refused (T04) until it is credited')
    // near minBalance is nearly out of credit, not holding little of a wide range
    expect(stdout).toContain('- erin is near its minBalance (-1000)')
    expect(stdout).not.toContain('dana is near')
    expect(row(stdout, 'dana')[8]).toBe('0.3%')
  })
})

describe('changing the farm', () => {
  it('accounts add with flags prints the generated token once, and the token works', async () => {
    const added = ok(await cli(['accounts', 'add', '--id', 'dave', '--relation', 'child', '--asset-code', 'EUR', '--asset-scale', '2', '--min-balance', '-500']))
    expect(added.stdout).toContain('added account dave (child, EUR scale 2)')
    expect(added.stdout).toMatch(/min balance: +-500 \(-5\.00 EUR\), can still send 500/)
    const token = /shown this once[^\n]*\n {2}(\S+)/.exec(added.stdout)?.[1]
    expect(token).toBeDefined()
    // The farm takes the printed token (ILDCP answers only an authenticated child).
    const ildcp = await sendIlp(farm.url, 'dave', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 10_000) }), { token: token! })
    expect(ildcp.status).toBe(200)
    expect((await api<{ minBalance: string; assetCode: string }>('/admin/accounts/dave')).minBalance).toBe('-500')

    const [again, json] = await clis(['accounts', 'add', '--id', 'dave', '--relation', 'child', '--asset-code', 'EUR', '--asset-scale', '2'], ['balance', 'dave', '--json'])
    expect(again.code).toBe(1)
    expect(again.stderr).toMatch(/the farm refused POST \/admin\/accounts \(HTTP 409\)/)
    expect(JSON.parse(ok(json).stdout)).toMatchObject({ id: 'dave', balance: '0', assetCode: 'EUR' })

    // the operator revokes the token by issuing a new one: the printed one works, the old one no longer
    const renewed = ok(await cli(['accounts', 'token', 'dave']))
    expect(renewed.stdout).toContain('the old token of dave no longer works')
    const fresh = /shown this once[^\n]*\n {2}(\S+)/.exec(renewed.stdout)?.[1]
    expect(fresh).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await sendIlp(farm.url, 'dave', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 10_000) }), { token: token! })).status).toBe(401)
    expect((await sendIlp(farm.url, 'dave', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 10_000) }), { token: fresh! })).status).toBe(200)
  })

  it('accounts add --file (YAML) with its own token, --json as the API answers; then remove', async () => {
    const file = join(tmp, 'ezra.yaml')
    writeFileSync(
      file,
      stringify({ id: 'ezra', relation: 'peer', assetCode: 'USD', assetScale: 6, incoming: { token: 'ezra-token' }, outgoing: { url: peer.url }, routes: ['test.ezra'] }),
    )
    const added = ok(await cli(['accounts', 'add', '--file', file, '--json']))
    const parsed = JSON.parse(added.stdout) as { account: Record<string, unknown>; token?: string }
    expect(parsed.token).toBeUndefined()
    expect(parsed.account).toEqual(await api('/admin/accounts/ezra'))

    const [routes, removed] = [ok(await cli(['routes'])), ok(await cli(['accounts', 'remove', 'ezra']))]
    expect(row(routes.stdout, 'test.ezra')[1]).toBe('ezra')
    expect(removed.stdout).toContain('removed account ezra; its balance was 0 (settled)')
    const gone = await cli(['balance', 'ezra'])
    expect(gone.code).toBe(1)
    expect(gone.stderr).toContain('the farm refused GET /admin/accounts/ezra (HTTP 404): no account ezra')
  })

  it('accounts add refused by the farm: exit 1 with every issue; --json passes the error document on', async () => {
    const bad = ['accounts', 'add', '--id', 'bad id', '--relation', 'child', '--asset-code', 'USD', '--asset-scale', '2', '--max-balance', 'lots']
    const [human, json] = await clis(bad, [...bad, '--json'])
    expect(human.code).toBe(1)
    expect(human.stderr).toContain('(HTTP 400)')
    expect(human.stderr).toContain('id: must be 1-64 characters')
    expect(human.stderr).toContain('maxBalance: must be an integer decimal string')
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout)).toMatchObject({ error: expect.stringContaining('maxBalance') })
  })

  it('deposit and withdraw: idempotent with --key, the generated key printed for a retry', async () => {
    const first = ok(await cli(['deposit', 'alice', '1000', '--key', 'cli-dep-1']))
    expect(first.stderr).toContain('deposit 1000 into alice, Idempotency-Key cli-dep-1')
    expect(first.stdout).toContain('deposited 1000 into alice: balance now 750')
    const [replay, json] = await clis(['deposit', 'alice', '1000', '--key', 'cli-dep-1'], ['deposit', 'alice', '1000', '--key', 'cli-dep-1', '--json'])
    expect(ok(replay).stdout).toContain('already applied with Idempotency-Key cli-dep-1: nothing changed; alice\'s balance is 750')
    expect(JSON.parse(ok(json).stdout)).toMatchObject({ id: 'alice', amount: '1000', balance: '750', applied: false })

    // Without --key: a fresh UUID, printed before the request; running again with it changes nothing.
    const fresh = ok(await cli(['withdraw', 'alice', '50']))
    const key = /Idempotency-Key ([0-9a-f-]{36})/.exec(fresh.stderr)?.[1]
    expect(key).toBeDefined()
    expect(fresh.stdout).toContain('withdrew 50 from alice: balance now 700')
    expect(ok(await cli(['withdraw', 'alice', '50', '--key', key!])).stdout).toContain('already applied')
    expect((await api<{ balance: string }>('/admin/accounts/alice')).balance).toBe('700')

    // Below minBalance: the farm refuses (422), nothing changes.
    const tooMuch = await cli(['withdraw', 'alice', '5000000', '--key', 'cli-wd-big'])
    expect(tooMuch.code).toBe(1)
    expect(tooMuch.stderr).toMatch(/\(HTTP 422\): the withdrawal would take the balance \(700\) below minBalance \(-1000000\)/)
    expect((await api<{ balance: string }>('/admin/accounts/alice')).balance).toBe('700')
  })

  it('routes add and remove a static next hop', async () => {
    const added = ok(await cli(['routes', 'add', 'test.more', 'upstream']))
    expect(added.stdout).toContain('test.more → upstream added; candidates now: upstream')
    expect(row(ok(await cli(['routes'])).stdout, 'test.more')[1]).toBe('upstream')
    const removed = ok(await cli(['routes', 'remove', 'test.more', '--account', 'upstream', '--json']))
    expect(JSON.parse(removed.stdout)).toEqual({ prefix: 'test.more', candidates: [] })
    const again = await cli(['routes', 'remove', 'test.more'])
    expect(again.code).toBe(1)
    expect(again.stderr).toContain('(HTTP 404): no static route test.more')
  })

  it('tickets issue: a one-time ticket with the limits given; it redeems once into that account', async () => {
    const [issued, json, bad] = await clis(
      ['tickets', 'issue', '--asset-code', 'USD', '--asset-scale', '6', '--max-packet-amount', '77', '--id', 'tess', '--expires-in', '10m', '--callback-url', 'http://127.0.0.1:'],
      ['tickets', 'issue', '--asset-code', 'USD', '--asset-scale', '6', '--json'],
      ['tickets', 'issue', '--asset-code', 'USD', '--asset-scale', '6', '--expires-in', 'soon'],
    )
    const ticket = /ticket:\s+(\S+)/.exec(ok(issued).stdout)?.[1]
    expect(ticket).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect(Date.parse(/valid until (\S+)/.exec(issued.stdout)![1]!) - Date.now()).toBeGreaterThan(9 * 60_000)
    expect(JSON.parse(ok(json).stdout)).toMatchObject({ ticket: expect.any(String), expiresAt: expect.any(String) })
    expect(bad.code).toBe(2)
    expect(bad.stderr).toContain('--expires-in must be a number and a unit')
    const redeem = () =>
      request(`${farm.url}/rpc`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_redeemTicket', params: { ticket } }),
      }).then((r) => r.body.json() as Promise<{ result?: { id: string }; error?: { data?: { reason?: string } } }>)
    expect((await redeem()).result?.id).toBe('tess')
    expect((await redeem()).error?.data?.reason).toBe('invalid-ticket')
    expect((await adminGet<{ maxPacketAmount: string; origin: string }>(farm.url, '/admin/accounts/tess')).json).toMatchObject({ maxPacketAmount: '77', origin: 'ticket' })
    // a static route to her (she may register an RPC URL): the routes table says whose account it is
    ok(await cli(['routes', 'add', 'test.tess', 'tess']))
    const [routes, routesJson] = await clis(['routes'], ['routes', '--json'])
    expect(row(ok(routes).stdout, 'test.tess').slice(0, 3)).toEqual(['test.tess', 'tess (ticket account)', 'static (admin)'])
    const view = JSON.parse(ok(routesJson).stdout) as { routes: Array<{ prefix: string; candidates: Array<{ origin: string | null }> }> }
    expect(view.routes.find((r) => r.prefix === 'test.tess')!.candidates[0]!.origin).toBe('ticket')
    expect(view.routes.find((r) => r.prefix === 'test.upstream')!.candidates[0]!.origin).toBe('config')
    ok(await cli(['routes', 'remove', 'test.tess']))
  })
})

describe('exit codes and where the farm is', () => {
  it('a wrong admin token exits 1 with the farm\'s answer', async () => {
    const r = await cli(['accounts', 'list'], cleanEnv({ ILP_FARM_URL: farm.url, ILP_FARM_ADMIN_TOKEN: 'wrong' }))
    expect(r.code).toBe(1)
    expect(r.stderr).toContain('the farm refused GET /admin/accounts?limit=1000 (HTTP 401): unauthorized')
    expect(r.stderr).toContain('check the admin token')
    expect(r.stdout).toBe('')
  })

  it('a farm that is down exits 1 and says so', async () => {
    const port = await freePort()
    const r = await cli(['balance', 'alice', '--url', `http://127.0.0.1:${port}`, '--token', ADMIN_TOKEN], cleanEnv())
    expect(r.code).toBe(1)
    expect(r.stderr).toContain(`ilp-farm: cannot reach the farm at http://127.0.0.1:${port}: connection refused`)
  })

  it('bad usage exits 2 and points at the help', async () => {
    const runs = await Promise.all([
      cli(['balance']),
      cli(['balance', 'alice', 'extra']),
      cli(['balance', 'alice', '--frobnicate']),
      cli(['deposit', 'alice', '1.5']),
      cli(['accounts', 'rename'], cleanEnv()), // arguments are checked before the farm is looked for
      cli(['accounts', 'list', '--asset-code', 'USD']),
      cli(['accounts', 'add', '--id', 'x'], cleanEnv()),
      cli(['balance', 'alice'], cleanEnv()),
    ])
    for (const r of runs) expect(r.code, r.stderr).toBe(2)
    expect(runs[0]!.stderr).toContain('ilp-farm: missing <id>\nrun "ilp-farm balance --help" for its usage')
    expect(runs[1]!.stderr).toContain('unexpected argument "extra"')
    expect(runs[2]!.stderr).toContain("Unknown option '--frobnicate'")
    expect(runs[3]!.stderr).toContain('AMOUNT must be a positive integer in base units, got "1.5"')
    expect(runs[4]!.stderr).toContain('unknown accounts subcommand "rename"')
    expect(runs[5]!.stderr).toContain('--asset-code belongs to "accounts add"')
    expect(runs[6]!.stderr).toContain('accounts add needs --relation')
    expect(runs[7]!.stderr).toContain('where is the farm? give --url URL, set ILP_FARM_URL, or --config FILE')
  })

  it('--config gives URL and token; ILP_FARM_* override it; --url and --token override those', async () => {
    const port = Number(new URL(farm.url).port)
    const file = join(tmp, 'farm.yaml')
    writeFileSync(
      file,
      stringify({ ilpAddress: 'test.farm', http: { host: '0.0.0.0', port }, admin: { token: ADMIN_TOKEN }, accounts: [account('alice')] }),
    )
    const down = `http://127.0.0.1:${await freePort()}`
    const [fromConfig, envWins, flagWins, badEnvToken, flagToken, badConfig] = await Promise.all([
      cli(['balance', 'alice', '--config', file], cleanEnv()),
      cli(['balance', 'alice', '--config', file], cleanEnv({ ILP_FARM_URL: down })),
      cli(['balance', 'alice', '--config', file, '--url', farm.url], cleanEnv({ ILP_FARM_URL: down })),
      cli(['balance', 'alice', '--config', file], cleanEnv({ ILP_FARM_ADMIN_TOKEN: 'wrong' })),
      cli(['balance', 'alice', '--config', file, '--token', ADMIN_TOKEN], cleanEnv({ ILP_FARM_ADMIN_TOKEN: 'wrong' })),
      cli(['balance', 'alice', '--config', join(tmp, 'missing.yaml')], cleanEnv()),
    ])
    expect(ok(fromConfig).stdout).toContain('alice (child): balance')
    expect(envWins.code).toBe(1)
    expect(envWins.stderr).toContain(`cannot reach the farm at ${down}`)
    ok(flagWins)
    expect(badEnvToken.code).toBe(1)
    expect(badEnvToken.stderr).toContain('HTTP 401')
    ok(flagToken)
    expect(badConfig.code).toBe(2)
    expect(badConfig.stderr).toContain('(file): cannot read: ENOENT')
  })

  it('--help everywhere', async () => {
    const [top, accounts, deposit, helpInspect] = await clis(['--help'], ['accounts', '--help'], ['deposit', '-h'], ['help', 'inspect'])
    for (const c of ['accounts list|add|update|import|remove', 'balance ID', 'deposit ID AMOUNT', 'withdraw ID AMOUNT', 'routes', 'inflight', 'workers', 'inspect', 'bench']) {
      expect(ok(top).stdout).toContain(`  ${c}`)
    }
    expect(top.stdout).toContain('ILP_FARM_URL')
    expect(ok(accounts).stdout).toContain('ilp-farm accounts add --id ID --relation parent|peer|child')
    expect(accounts.stdout).toContain('--url URL')
    expect(ok(deposit).stdout).toContain('Usage: ilp-farm deposit ID AMOUNT [--key KEY]')
    expect(ok(helpInspect).stdout).toContain('Usage: ilp-farm inspect')
  })
})
