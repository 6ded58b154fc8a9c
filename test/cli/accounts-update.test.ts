import { IlpPacketType } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { redeemTicket, signUp } from 'ilp-farm-client'
import { cleanEnv, killAllClis, runCli } from '../helpers/cli.js'
import { account, ADMIN_TOKEN, adminGet, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * `ilp-farm accounts update` (a partial change read and written back whole),
 * `--callback-url` on `accounts add` and `tickets issue`: the CLI a real child
 * process, the farm a real worker with open sign-up but no users.rpcUrlPrefixes,
 * so a signed-up account starts out unable to register any RPC URL.
 */

interface Result {
  code: number | null
  stdout: string
  stderr: string
}

interface View {
  id: string
  minBalance: string
  maxBalance: string | null
  maxPacketAmount: string | null
  origin: string
  incoming: { callbackUrls: string[] | null } | null
  allowedUrlPrefixes: string[]
  outgoing: { url: string; mode: string; hasToken: boolean } | null
  routes: string[]
  parallelism: number | null
  metrics: boolean | null
  settleThreshold: string | null
  settleTo: string | null
}

let redis: TestRedis
let peer: TestPeer
let farm: TestFarm
let env: NodeJS.ProcessEnv

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer(fulfillKnown)
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000' }),
      account('upstream', {
        relation: 'peer',
        maxBalance: '1000000',
        parallelism: 3,
        metrics: true,
        settleThreshold: '900000',
        outgoing: { url: peer.url, token: 'to-upstream' },
        routes: ['test.upstream'],
      }),
    ],
    { signup: { enabled: true, difficulty: 8, account: { assetCode: 'USD', assetScale: 6, maxBalance: '5000', maxPacketAmount: '100' } } },
  )
  env = cleanEnv({ ILP_FARM_URL: farm.url, ILP_FARM_ADMIN_TOKEN: ADMIN_TOKEN })
})

afterEach(async () => {
  await killAllClis()
})

afterAll(async () => {
  await killAllClis()
  await farm?.close()
  await peer?.close()
  await redis?.close()
})

async function cli(args: string[]): Promise<Result> {
  const run = runCli(args, { env })
  const { code } = await run.waitForExit(25_000)
  return { code, stdout: run.stdout(), stderr: run.stderr() }
}

function ok(r: Result): Result {
  expect(r.code, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`).toBe(0)
  return r
}

async function view(id: string): Promise<View> {
  const { status, json } = await adminGet<View>(farm.url, `/admin/accounts/${id}`)
  expect(status).toBe(200)
  return json
}

async function rpc(method: string, params: unknown, token: string): Promise<{ result?: Record<string, unknown>; error?: { code: number; message: string } }> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return (await res.body.json()) as { result?: Record<string, unknown>; error?: { code: number; message: string } }
}

describe('accounts update', () => {
  it('lets the operator repair a signed-up account: --callback-url, a limit, the rest and the token kept', async () => {
    const sue = await signUp(`${farm.url}/rpc`, { id: 'sue', threads: 1 })
    expect(await view('sue')).toMatchObject({ incoming: { callbackUrls: null }, allowedUrlPrefixes: [] })
    expect((await rpc('ilp_setRpcUrl', { url: 'http://127.0.0.1:9/sue' }, sue.token)).error?.code).toBe(-32602)

    const updated = ok(await cli(['accounts', 'update', 'sue', '--callback-url', 'http://127.0.0.1:', '--callback-url', 'https://tunnel.example.com/', '--max-balance', '9000']))
    expect(updated.stdout).toContain('updated account sue (child, USD scale 6); its token is unchanged')
    expect(updated.stdout).toMatch(/url prefixes: +http:\/\/127\.0\.0\.1: https:\/\/tunnel\.example\.com\//)
    expect(await view('sue')).toMatchObject({
      origin: 'signup',
      minBalance: '0',
      maxBalance: '9000',
      maxPacketAmount: '100',
      incoming: { callbackUrls: ['http://127.0.0.1:', 'https://tunnel.example.com/'] },
      allowedUrlPrefixes: ['http://127.0.0.1:', 'https://tunnel.example.com/'],
    })
    // the token the user holds still is the account, and the URL is now taken
    expect((await rpc('ilp_getBalance', {}, sue.token)).result).toMatchObject({ balance: '0', maxBalance: '9000' })
    expect((await rpc('ilp_setRpcUrl', { url: 'http://127.0.0.1:9/sue' }, sue.token)).result).toEqual({ url: 'http://127.0.0.1:9/sue' })
    expect((await rpc('ilp_setRpcUrl', { url: 'http://10.0.0.1/sue' }, sue.token)).error?.code).toBe(-32602)

    const [balance, json] = await Promise.all([cli(['balance', 'sue']), cli(['accounts', 'update', 'sue', '--max-packet-amount', '200', '--json'])])
    expect(ok(balance).stdout).toMatch(/url prefixes: +http:\/\/127\.0\.0\.1: https:\/\/tunnel\.example\.com\//)
    expect(balance.stdout).toMatch(/rpc url: +http:\/\/127\.0\.0\.1:9\/sue/)
    expect(balance.stdout).toMatch(/defined in: +open sign-up/)
    expect(JSON.parse(ok(json).stdout)).toEqual(await view('sue'))
    expect((await view('sue')).maxPacketAmount).toBe('200')
  })

  it('--clear-callback-urls and "none" limits; what is not named stays', async () => {
    const { token } = await signUp(`${farm.url}/rpc`, { id: 'sol', threads: 1 })
    ok(await cli(['accounts', 'update', 'sol', '--callback-url', 'https://wallet.example/', '--min-balance', '-50']))
    const cleared = ok(await cli(['accounts', 'update', 'sol', '--clear-callback-urls', '--max-balance', 'none']))
    expect(cleared.stdout).toMatch(/url prefixes: +none/)
    expect(await view('sol')).toMatchObject({ minBalance: '-50', maxBalance: null, maxPacketAmount: '100', incoming: { callbackUrls: null }, allowedUrlPrefixes: [] })
    expect((await rpc('ilp_getBalance', {}, token)).result).toMatchObject({ minBalance: '-50', maxBalance: null })
  })

  it('an account with an outgoing token: refused unless the token is given again, then it is still sent', async () => {
    const before = await view('upstream')
    const refused = await cli(['accounts', 'update', 'upstream', '--max-balance', '2000000'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('upstream has an outgoing.token, which the admin API never shows: give it again with --outgoing-token T')
    expect(await view('upstream')).toEqual(before)

    ok(await cli(['accounts', 'update', 'upstream', '--max-balance', '2000000', '--outgoing-token', 'to-upstream']))
    expect(await view('upstream')).toMatchObject({
      maxBalance: '2000000',
      outgoing: { url: peer.url, mode: 'sync', hasToken: true },
      routes: ['test.upstream'],
      parallelism: 3,
      metrics: true,
      settleThreshold: '900000',
      settleTo: '0',
      incoming: { callbackUrls: null },
      allowedUrlPrefixes: [`${new URL(peer.url).origin}/`],
    })
    const paid = await sendIlp(farm.url, 'alice', prepareTo('test.upstream.bob', '10', knownCondition()))
    expect(paid.packet?.type).toBe(IlpPacketType.Fulfill)
    expect(peer.received.at(-1)!.headers.authorization).toBe('Bearer to-upstream')
    // the incoming token too
    expect((await sendIlp(farm.url, 'upstream', prepareTo('test.farm.alice', '1', knownCondition()))).status).toBe(200)
  })

  it('bad usage exits 2; what the farm refuses exits 1 with its reason', async () => {
    const [noChange, noId, both, notAdd, unknown, badPrefix, minNone] = await Promise.all([
      cli(['accounts', 'update', 'alice']),
      cli(['accounts', 'update', '--max-balance', '5']),
      cli(['accounts', 'update', 'alice', '--callback-url', 'https://a.example/', '--clear-callback-urls']),
      cli(['accounts', 'update', 'alice', '--asset-code', 'EUR']),
      cli(['accounts', 'update', 'nobody', '--max-balance', '5']),
      cli(['accounts', 'update', 'alice', '--callback-url', 'https://wallet.example']),
      cli(['accounts', 'update', 'alice', '--min-balance', 'none']),
    ])
    for (const r of [noChange, noId, both, notAdd, minNone]) expect(r.code, r.stderr).toBe(2)
    expect(noChange.stderr).toContain('accounts update needs a change: --callback-url, --clear-callback-urls')
    expect(noId.stderr).toContain('missing <id>')
    expect(both.stderr).toContain('--callback-url and --clear-callback-urls do not go together')
    expect(notAdd.stderr).toContain('--asset-code belongs to "accounts add", not "accounts update"')
    expect(minNone.stderr).toContain('--min-balance takes an amount')
    expect(unknown.code).toBe(1)
    expect(unknown.stderr).toContain('the farm refused GET /admin/accounts/nobody (HTTP 404)')
    expect(badPrefix.code).toBe(1)
    expect(badPrefix.stderr).toContain('incoming.callbackUrls[0]: must be an http(s) URL prefix that ends its host with "/" or ":"')
    expect((await view('alice')).incoming).toEqual({ callbackUrls: null })
  })
})

describe('--callback-url on accounts add and tickets issue', () => {
  it('accounts add --callback-url: the new account may register under it, with a generated token', async () => {
    const added = ok(await cli(['accounts', 'add', '--id', 'cara', '--relation', 'child', '--asset-code', 'USD', '--asset-scale', '6', '--callback-url', 'https://tunnel.example.com/']))
    const token = /shown this once[^\n]*\n {2}(\S+)/.exec(added.stdout)?.[1]
    expect(token).toBeDefined()
    expect(added.stdout).toMatch(/url prefixes: +https:\/\/tunnel\.example\.com\//)
    expect(await view('cara')).toMatchObject({ incoming: { callbackUrls: ['https://tunnel.example.com/'] } })
    expect((await rpc('ilp_setRpcUrl', { url: 'https://tunnel.example.com/cara-1' }, token!)).result).toEqual({ url: 'https://tunnel.example.com/cara-1' })
    const refused = await cli(['accounts', 'add', '--id', 'x', '--relation', 'child', '--asset-code', 'USD', '--asset-scale', '6', '--clear-callback-urls'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).toContain('--clear-callback-urls belongs to "accounts update", not "accounts add"')
  })

  it('tickets issue --callback-url: the redeemed account gets exactly those prefixes; a bad one is refused', async () => {
    const [issued, bad] = await Promise.all([
      cli(['tickets', 'issue', '--asset-code', 'USD', '--asset-scale', '6', '--callback-url', 'http://127.0.0.1:', '--callback-url', 'https://*.loca.lt/', '--json']),
      cli(['tickets', 'issue', '--asset-code', 'USD', '--asset-scale', '6', '--callback-url', 'wallet.example/']),
    ])
    const { ticket } = JSON.parse(ok(issued).stdout) as { ticket: string }
    const tess = await redeemTicket(`${farm.url}/rpc`, ticket, { id: 'tess' })
    expect(await view('tess')).toMatchObject({ origin: 'ticket', incoming: { callbackUrls: ['http://127.0.0.1:', 'https://*.loca.lt/'] } })
    expect((await rpc('ilp_setRpcUrl', { url: 'https://abc.loca.lt/rpc' }, tess.token)).result).toEqual({ url: 'https://abc.loca.lt/rpc' })
    expect(bad.code).toBe(1)
    expect(bad.stderr).toContain('callbackUrls[0]: must be an http(s) URL prefix')
  })
})
