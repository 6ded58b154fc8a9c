import { Type } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { redeemTicket, signUp, solvePow } from 'ilp-farm-client'
import { leadingZeroBits, powDigest, verifyPow } from '@ilp-farm/protocol'
import { account, adminGet, adminSend, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** Invitation tickets and open sign-up by proof of work, on a real farm and Redis. */
let redis: TestRedis
let farm: TestFarm
let closed: TestFarm
let quick: TestFarm
let bob: TestPeer
const DIFFICULTY = 12

interface RpcAnswer {
  result?: Record<string, unknown>
  error?: { code: number; message: string; data?: { reason?: string } }
}

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  // the config file may use a reserved id (only new accounts are held to them)
  const accounts = [account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] }), account('local')]
  const signupAccount = { assetCode: 'USD', assetScale: 6, minBalance: '0', maxBalance: '5000', maxPacketAmount: '100' }
  // generous: on a loaded machine starting the solver's threads alone can take a second or two
  farm = await startTestFarm(redis.url, accounts, { signup: { enabled: true, difficulty: DIFFICULTY, challengeTtlMs: 20_000, account: signupAccount } })
  quick = await startTestFarm(redis.url, accounts, { signup: { enabled: true, difficulty: DIFFICULTY, challengeTtlMs: 300, account: signupAccount } })
  closed = await startTestFarm(redis.url, accounts) // sign-up off: the default
})

afterAll(async () => {
  await farm?.close()
  await closed?.close()
  await quick?.close()
  await bob?.close()
  await redis?.close()
})

async function rpc(url: string, method: string, params: unknown = {}, token?: string): Promise<{ status: number; answer: RpcAnswer }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token) headers.authorization = `Bearer ${token}`
  const res = await request(`${url}/rpc`, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }) })
  return { status: res.statusCode, answer: (await res.body.json()) as RpcAnswer }
}

const issue = (body: unknown, token?: string | null) => adminSend<{ ticket: string; expiresAt: string; error?: string }>(farm.url, 'POST', '/admin/tickets', body, { token })
const usd = { assetCode: 'USD', assetScale: 6 }

describe('invitation tickets', () => {
  it('the operator issues a ticket; redeeming it creates the account with its limits and returns a working token', async () => {
    const issued = await issue({ account: { ...usd, minBalance: '-300', maxPacketAmount: '200' }, expiresInMs: 60_000 })
    expect(issued.status).toBe(201)
    expect(Date.parse(issued.json.expiresAt)).toBeGreaterThan(Date.now() + 50_000)
    const redeemed = await rpc(farm.url, 'ilp_redeemTicket', { ticket: issued.json.ticket, id: 'tina' })
    expect(redeemed.status).toBe(200)
    expect(redeemed.answer.result).toMatchObject({ id: 'tina', ilpAddress: 'test.farm.tina', assetCode: 'USD', assetScale: 6 })
    const token = redeemed.answer.result!.token as string
    const info = await adminGet<{ minBalance: string; maxPacketAmount: string; origin: string; relation: string }>(farm.url, '/admin/accounts/tina')
    expect(info.json).toMatchObject({ minBalance: '-300', maxPacketAmount: '200', origin: 'ticket', relation: 'child' })
    // the token acts on this account: JSON-RPC and ILP-over-HTTP
    expect((await rpc(farm.url, 'ilp_getBalance', {}, token)).answer.result).toMatchObject({ balance: '0', minBalance: '-300' })
    expect((await sendIlp(farm.url, 'tina', prepareTo('test.bob.x', '150', knownCondition()), { token })).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    expect((await sendIlp(farm.url, 'tina', prepareTo('test.bob.x', '201', knownCondition()), { token })).packet).toMatchObject({ data: { code: 'F08' } })
    expect((await sendIlp(farm.url, 'tina', prepareTo('test.bob.x', '151', knownCondition()), { token })).packet).toMatchObject({ data: { code: 'T04' } })
  })

  it('a used ticket is refused, and so is one redeemed many times at once but once', async () => {
    const issued = await issue({ account: usd })
    expect((await rpc(farm.url, 'ilp_redeemTicket', { ticket: issued.json.ticket })).answer.result?.id).toMatch(/^u[0-9a-f]{16}$/)
    const again = await rpc(farm.url, 'ilp_redeemTicket', { ticket: issued.json.ticket })
    expect(again.answer.error).toMatchObject({ code: 2, data: { reason: 'invalid-ticket' } })
    const raced = await issue({ account: usd })
    const tries = await Promise.all(Array.from({ length: 10 }, (_, i) => rpc(farm.url, 'ilp_redeemTicket', { ticket: raced.json.ticket, id: `race${i}` })))
    expect(tries.filter((t) => t.answer.result)).toHaveLength(1)
    expect(tries.filter((t) => t.answer.error?.data?.reason === 'invalid-ticket')).toHaveLength(9)
    const { json } = await adminGet<{ accounts: Array<{ id: string }> }>(farm.url, '/admin/accounts?limit=1000')
    expect(json.accounts.filter((a) => a.id.startsWith('race'))).toHaveLength(1)
  })

  it('an expired ticket is refused and creates nothing', async () => {
    const issued = await issue({ account: usd, expiresInMs: 150 })
    await new Promise((r) => setTimeout(r, 300))
    const late = await rpc(farm.url, 'ilp_redeemTicket', { ticket: issued.json.ticket, id: 'late' })
    expect(late.answer.error).toMatchObject({ code: 2, data: { reason: 'invalid-ticket' } })
    expect((await adminGet(farm.url, '/admin/accounts/late')).status).toBe(404)
    expect((await rpc(farm.url, 'ilp_redeemTicket', { ticket: 'made-up' })).answer.error?.data?.reason).toBe('invalid-ticket')
  })

  it('a ticket for a fixed id; a taken id leaves the ticket usable', async () => {
    const fixed = await issue({ account: usd, id: 'tina' })
    const taken = await rpc(farm.url, 'ilp_redeemTicket', { ticket: fixed.json.ticket })
    expect(taken.answer.error).toMatchObject({ code: 2, data: { reason: 'id-taken' } })
    const other = await issue({ account: usd, id: 'ted' })
    expect((await rpc(farm.url, 'ilp_redeemTicket', { ticket: other.json.ticket, id: 'tom' })).answer.error?.data?.reason).toBe('invalid-account')
    expect((await rpc(farm.url, 'ilp_redeemTicket', { ticket: other.json.ticket })).answer.result?.id).toBe('ted')
  })

  it('only the operator issues tickets, and only for valid accounts', async () => {
    expect((await issue({ account: usd }, null)).status).toBe(401)
    expect((await issue({ account: usd }, 'bob-token')).status).toBe(401)
    expect((await issue({ account: { ...usd, minBalance: 'lots' } })).status).toBe(400)
    expect((await issue({ account: { ...usd, incoming: { token: 'mine' } } })).status).toBe(400)
    expect((await issue({ account: usd, expiresInMs: 0 })).status).toBe(400)
    expect((await issue({})).status).toBe(400)
  })
})

describe('open sign-up by proof of work', () => {
  it('checks a proof with one hash', () => {
    expect(leadingZeroBits(Buffer.from([0, 0, 0x10, 0xff]))).toBe(19)
    expect(leadingZeroBits(Buffer.from([0x80]))).toBe(0)
    const nonce = String([...Array(1_000_000).keys()].find((n) => leadingZeroBits(powDigest('abc', String(n))) >= 8))
    expect(verifyPow('abc', nonce, 8)).toBe(true)
    expect(verifyPow('abd', nonce, 30)).toBe(false)
    expect(verifyPow('abc', `${nonce}x`, 8)).toBe(false)
  })

  it('a correct solution, found off the main thread, gets a child account with the sign-up limits', async () => {
    const { answer } = await rpc(farm.url, 'ilp_getSignupChallenge')
    const { challenge, difficulty } = answer.result as { challenge: string; difficulty: number }
    expect(difficulty).toBe(DIFFICULTY)
    // the event loop stays free while piscina threads search
    let ticks = 0
    const ticker = setInterval(() => ticks++, 1)
    const nonce = await solvePow(challenge, difficulty, { threads: 1 })
    clearInterval(ticker)
    expect(ticks).toBeGreaterThan(0)
    expect(verifyPow(challenge, nonce, difficulty)).toBe(true)
    const signedUp = await rpc(farm.url, 'ilp_signUp', { challenge, nonce, id: 'sam' })
    expect(signedUp.answer.result).toMatchObject({ id: 'sam', ilpAddress: 'test.farm.sam' })
    const info = await adminGet<Record<string, unknown>>(farm.url, '/admin/accounts/sam')
    expect(info.json).toMatchObject({ relation: 'child', origin: 'signup', minBalance: '0', maxBalance: '5000', maxPacketAmount: '100' })
    const token = signedUp.answer.result!.token as string
    expect((await rpc(farm.url, 'ilp_getAccountInfo', {}, token)).answer.result).toMatchObject({ ilpAddress: 'test.farm.sam' })
    // a replayed solution gets nothing
    const replay = await rpc(farm.url, 'ilp_signUp', { challenge, nonce, id: 'sam2' })
    expect(replay.answer.error).toMatchObject({ code: 2, data: { reason: 'invalid-challenge' } })
    expect((await adminGet(farm.url, '/admin/accounts/sam2')).status).toBe(404)
  })

  it('a wrong solution, an unknown or expired challenge get nothing', async () => {
    const { answer } = await rpc(farm.url, 'ilp_getSignupChallenge')
    const challenge = (answer.result as { challenge: string }).challenge
    const wrong = [...Array(100).keys()].map(String).find((n) => !verifyPow(challenge, n, DIFFICULTY))!
    expect((await rpc(farm.url, 'ilp_signUp', { challenge, nonce: wrong, id: 'wrong' })).answer.error).toMatchObject({ code: 2, data: { reason: 'wrong-solution' } })
    const made = 'made-up-challenge'
    const nonce = await solvePow(made, DIFFICULTY, { threads: 1 })
    expect((await rpc(farm.url, 'ilp_signUp', { challenge: made, nonce })).answer.error?.data?.reason).toBe('invalid-challenge')
    // solved, but after the challenge expired (challengeTtlMs 300 ms on that farm)
    const old = ((await rpc(quick.url, 'ilp_getSignupChallenge')).answer.result as { challenge: string }).challenge
    const solved = await solvePow(old, DIFFICULTY, { threads: 1 })
    await new Promise((r) => setTimeout(r, 400))
    expect((await rpc(quick.url, 'ilp_signUp', { challenge: old, nonce: solved, id: 'slow' })).answer.error?.data?.reason).toBe('invalid-challenge')
    expect((await adminGet(farm.url, '/admin/accounts/wrong')).status).toBe(404)
    expect((await adminGet(farm.url, '/admin/accounts/slow')).status).toBe(404)
    expect((await rpc(farm.url, 'ilp_signUp', { challenge: old })).answer.error?.code).toBe(-32602)
  })

  it('is off by default', async () => {
    expect((await rpc(closed.url, 'ilp_getSignupChallenge')).answer.error).toMatchObject({ code: 2, data: { reason: 'signup-disabled' } })
    // without a token, every other method is still refused with 401
    const refused = await rpc(closed.url, 'ilp_getBalance')
    expect(refused.status).toBe(401)
    expect(refused.answer.error?.code).toBe(-32001)
  })
})

describe('reserved ids', () => {
  it('are refused for tickets, sign-up, the admin API and import, whatever their case; the ticket or challenge stays usable', async () => {
    const reservedMessage = /is reserved \(a name of the farm or of an ILP address scheme\)/
    const fixed = await issue({ account: usd, id: 'admin' })
    expect(fixed.status).toBe(400)
    expect(JSON.stringify(fixed.json)).toMatch(reservedMessage)

    const open = await issue({ account: usd })
    const refused = await rpc(farm.url, 'ilp_redeemTicket', { ticket: open.json.ticket, id: 'Peer' })
    expect(refused.answer.error).toMatchObject({ code: 2, data: { reason: 'invalid-account' }, message: expect.stringMatching(reservedMessage) })
    expect((await rpc(farm.url, 'ilp_redeemTicket', { ticket: open.json.ticket, id: 'peer-2' })).answer.result?.id).toBe('peer-2')

    const { answer } = await rpc(farm.url, 'ilp_getSignupChallenge')
    const { challenge } = answer.result as { challenge: string }
    const nonce = await solvePow(challenge, DIFFICULTY, { threads: 1 })
    expect((await rpc(farm.url, 'ilp_signUp', { challenge, nonce, id: 'self' })).answer.error).toMatchObject({ code: 2, data: { reason: 'invalid-account' } })
    expect((await rpc(farm.url, 'ilp_signUp', { challenge, nonce, id: 'selfie' })).answer.result?.id).toBe('selfie')

    const created = await adminSend<{ error: string }>(farm.url, 'POST', '/admin/accounts', { id: 'FARM', relation: 'child', ...usd })
    expect(created.status).toBe(400)
    expect(created.json.error).toMatch(reservedMessage)
    const imported = await adminSend<{ results: Array<{ outcome: string; error?: string }> }>(farm.url, 'POST', '/admin/accounts/import', [
      { id: 'rpc', relation: 'child', ...usd },
    ])
    expect(JSON.stringify(imported.json)).toMatch(reservedMessage)
    for (const id of ['admin', 'peer', 'self', 'farm', 'rpc']) expect((await adminGet(farm.url, `/admin/accounts/${id}`)).status).toBe(404)
    expect((await adminGet(farm.url, '/admin/accounts/local')).status).toBe(200)
  })
})

describe('the client package', () => {
  it('redeems a ticket and signs up (solving on worker threads), getting working tokens', async () => {
    const issued = await issue({ account: usd })
    const viaTicket = await redeemTicket(`${farm.url}/rpc`, issued.json.ticket, { id: 'cleo' })
    expect(viaTicket).toMatchObject({ id: 'cleo', ilpAddress: 'test.farm.cleo' })
    await expect(redeemTicket(`${farm.url}/rpc`, issued.json.ticket)).rejects.toThrow(/used or expired/)
    const viaSignup = await signUp(`${farm.url}/rpc`, { id: 'sid', threads: 2 })
    expect(viaSignup).toMatchObject({ id: 'sid', assetCode: 'USD', assetScale: 6 })
    for (const { id, token } of [viaTicket, viaSignup]) {
      expect((await rpc(farm.url, 'ilp_getAccountInfo', {}, token)).answer.result).toMatchObject({ ilpAddress: `test.farm.${id}` })
    }
    await expect(signUp(`${closed.url}/rpc`)).rejects.toThrow(/not enabled/)
  })
})

