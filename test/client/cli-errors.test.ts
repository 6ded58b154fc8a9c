import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminSend, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { type ClientCli, runClientCli } from './processes.js'

/**
 * ilp-farm-client against a farm that says no: each refusal is printed as
 * the farm's message (with its data.reason when it gives one) and exits 1,
 * the documented code for "the farm refused or failed".
 */

const DASHED_TOKEN = `-${'a'.repeat(21)}_${'B'.repeat(20)}`

let redis: TestRedis
let farm: TestFarm
let openFarm: TestFarm
const clis: ClientCli[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  const accounts = [
    account('payer'),
    // its RPC URL may only be under the tunnel server's prefix: the local endpoint's own URL is refused
    account('walled', { incoming: { token: 'walled-token', callbackUrls: ['https://tunnel.example.com/'] } }),
    // a token of the farm's own shape that begins with "-", as one in 64 did before farms stopped issuing them
    account('dashed', { incoming: { token: DASHED_TOKEN } }),
  ]
  farm = await startTestFarm(redis.url, accounts) // sign-up off: the default
  const signupAccount = { assetCode: 'USD', assetScale: 6, maxBalance: '5000', maxPacketAmount: '100' }
  openFarm = await startTestFarm(redis.url, accounts, { signup: { enabled: true, difficulty: 4, challengeTtlMs: 60_000, account: signupAccount } })
})

afterAll(async () => {
  await Promise.all(clis.map((c) => c.kill()))
  await farm?.close()
  await openFarm?.close()
  await redis?.close()
})

/** Runs the CLI to its end; its exit code and output. */
async function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const c = runClientCli(args)
  clis.push(c)
  const { code } = await c.exited
  return { code, stdout: c.stdout(), stderr: c.stderr() }
}

/** The one line a refusal prints: no stack trace, nothing on stdout. */
function expectRefusal(run: { code: number | null; stdout: string; stderr: string }, line: RegExp): void {
  expect(run.stderr.trim(), run.stderr).toMatch(line)
  expect(run.stderr.trim().split('\n'), run.stderr).toHaveLength(1)
  expect(run.stdout).toBe('')
  expect(run.code, run.stderr).toBe(1)
}

describe('ilp-farm-client: the farm refuses', () => {
  it('a wrong token', async () => {
    const run = await cli(['balance', '--rpc', `${farm.url}/rpc`, '--token', 'not-a-token'])
    expectRefusal(run, /^ilp-farm-client balance: ilp_get(AccountInfo|Balance): Unauthorized: /)
  })

  it('an unknown ticket', async () => {
    const run = await cli(['redeem', '--rpc', `${farm.url}/rpc`, '--ticket', 'made-up'])
    expectRefusal(run, /^ilp-farm-client redeem: ilp_redeemTicket: unknown, used or expired ticket \(reason: invalid-ticket\)$/)
  })

  it('a ticket already used', async () => {
    const issued = await adminSend<{ ticket: string }>(farm.url, 'POST', '/admin/tickets', { account: { assetCode: 'USD', assetScale: 6 } })
    expect(issued.status).toBe(201)
    const first = await cli(['redeem', '--rpc', `${farm.url}/rpc`, '--ticket', issued.json.ticket, '--id', 'tina'])
    expect(first.code, first.stderr).toBe(0)
    expect(JSON.parse(first.stdout)).toMatchObject({ id: 'tina', ilpAddress: 'test.farm.tina' })
    const again = await cli(['redeem', '--rpc', `${farm.url}/rpc`, '--ticket', issued.json.ticket, '--id', 'tina2'])
    expectRefusal(again, /^ilp-farm-client redeem: ilp_redeemTicket: unknown, used or expired ticket \(reason: invalid-ticket\)$/)
  })

  it('an RPC URL the account may not register (ilp_setRpcUrl)', async () => {
    const run = await cli(['receive', '--rpc', `${farm.url}/rpc`, '--token', 'walled-token', '--no-tunnel'])
    expectRefusal(run, /^ilp-farm-client receive: ilp_setRpcUrl: Invalid params: url is not allowed for this account/)
  })

  it('sign-up on a farm that does not offer it', async () => {
    const run = await cli(['signup', '--rpc', `${farm.url}/rpc`])
    expectRefusal(run, /^ilp-farm-client signup: ilp_getSignupChallenge: open sign-up is not enabled on this farm \(reason: signup-disabled\)$/)
  })

  it('sign-up with an id that is taken, after solving the proof of work', async () => {
    const run = await cli(['signup', '--rpc', `${openFarm.url}/rpc`, '--id', 'payer', '--threads', '1'])
    // the solver's progress line comes first
    expect(run.stderr).toMatch(/^solving a proof of work of 4 bits\.\.\.\n/)
    expectRefusal({ ...run, stderr: run.stderr.replace(/^solving .*\n/, '') }, /^ilp-farm-client signup: ilp_signUp: the account id "payer" is taken \(reason: id-taken\)$/)
  })
})

describe('ilp-farm-client: bad usage', () => {
  it('an unknown flag is still bad usage (exit 2), not a refusal', async () => {
    const run = await cli(['balance', '--rpc', `${farm.url}/rpc`, '--token', 'payer-token', '--colour'])
    expect(run.stderr).toMatch(/^ilp-farm-client balance: Unknown option '--colour'/)
    expect(run.code, run.stderr).toBe(2)
  })
})

describe('ilp-farm-client: a token or ticket that begins with "-"', () => {
  it('is taken as the value of --token or --ticket, not as an option', async () => {
    expect(DASHED_TOKEN).toHaveLength(43)
    const balance = await cli(['balance', '--rpc', `${farm.url}/rpc`, '--token', DASHED_TOKEN])
    expect(balance.code, balance.stderr).toBe(0)
    expect(balance.stdout).toContain('dashed')
    // a ticket of that shape reaches the farm, which does not know it (exit 1, not a usage error's 2)
    const redeem = await cli(['redeem', '--rpc', `${farm.url}/rpc`, '--ticket', `-${'c'.repeat(42)}`])
    expectRefusal(redeem, /^ilp-farm-client redeem: ilp_redeemTicket: unknown, used or expired ticket \(reason: invalid-ticket\)$/)
    // anything else that begins with "-" after --token is still parseArgs' usage error
    const missing = await cli(['balance', '--rpc', `${farm.url}/rpc`, '--token', '--json'])
    expect(missing.code, missing.stderr).toBe(2)
  })
})
