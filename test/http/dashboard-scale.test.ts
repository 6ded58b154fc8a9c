import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildSnapshot, type DashboardSnapshot, RECENT_SHOWN } from '../../src/metrics/dashboard-snapshot.js'
import { account, ADMIN_TOKEN, adminSend, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The dashboard with many accounts (no browser): a farm with 2,000 imported
 * children builds snapshots that hold the pinned accounts and at most
 * RECENT_SHOWN recently active ones, with a few Redis reads whatever the
 * number of accounts, and says how many there are; any other account is
 * found by id through the session-checked search endpoint.
 */
let redis: TestRedis
let farm: TestFarm
let peer: TestPeer
const IMPORTED = 2_000
/** Imported accounts that send a packet: more than a snapshot shows. */
const SENDERS = 30
const id = (i: number) => `u${String(i).padStart(4, '0')}`
/** What sender i pays: each one different, so each balance says whose it is. */
const amountOf = (i: number) => 1000 + i

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer(fulfillKnown)
  farm = await startTestFarm(redis.url, [
    account('good', { relation: 'peer', outgoing: { url: peer.url }, routes: ['test.good'] }),
    account('watched', { minBalance: '-1000000000', metrics: true }),
  ])
  const imported = Array.from({ length: IMPORTED }, (_, i) => account(id(i), { minBalance: '-1000000000' }))
  const res = await adminSend<{ results: Array<{ outcome: string }> }>(farm.url, 'POST', '/admin/accounts/import', imported)
  expect(res.status).toBe(200)
  expect(res.json.results.filter((r) => r.outcome === 'created')).toHaveLength(IMPORTED)
}, 60_000)

afterAll(async () => {
  await farm?.close()
  await peer?.close()
  await redis?.close()
})

async function pay(from: string, amount: number): Promise<void> {
  const res = await sendIlp(farm.url, from, prepareTo('test.good.shop', String(amount), knownCondition()))
  expect(res.packet?.type, `${from}: ${JSON.stringify(res.packet?.data)}`).toBe(13)
}

const snapshot = (): Promise<DashboardSnapshot> => buildSnapshot(farm.worker.services, farm.worker.services.metrics!)

/** Calls of Redis commands since the last CONFIG RESETSTAT, by lower-case name. */
async function commandCalls(): Promise<Map<string, number>> {
  const info = String(await redis.client.info('commandstats'))
  return new Map([...info.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]))
}

async function logIn(): Promise<string> {
  const res = await request(`${farm.url}/dashboard/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: ADMIN_TOKEN }),
  })
  expect(res.statusCode).toBe(204)
  await res.body.dump()
  return String(res.headers['set-cookie']).split(';')[0]!
}

async function lookUp(accountId: string, cookie?: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await request(`${farm.url}/dashboard/accounts/${encodeURIComponent(accountId)}`, { headers: cookie ? { cookie } : {} })
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }
}

describe('dashboard with 2,000 accounts', () => {
  it('shows the pinned accounts and at most 20 recently active ones, newest first, and counts them all', async () => {
    // senders one after another: the later ones are the more recent (each flush stamps its own second)
    for (let i = 0; i < SENDERS; i++) {
      await pay(id(i), amountOf(i))
      if (i === SENDERS / 2) await new Promise((r) => setTimeout(r, 1100))
    }
    // a pinned account's packets do not take a place among the recent ones
    await pay('watched', 5)

    let s = await snapshot()
    for (const deadline = Date.now() + 5000; s.recent.length < RECENT_SHOWN && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100))
      s = await snapshot()
    }
    expect(s.accountCount).toBe(IMPORTED + 2)
    expect(s.accounts.map((a) => a.id).sort()).toEqual(['good', 'watched'])
    expect(s.recent).toHaveLength(RECENT_SHOWN)
    const recentIds = s.recent.map((a) => a.id)
    expect(new Set(recentIds).size).toBe(RECENT_SHOWN)
    expect(recentIds).not.toContain('watched')
    for (const a of s.recent) {
      const i = Number(a.id.slice(1))
      expect(i).toBeLessThan(SENDERS)
      expect(a).toMatchObject({ relation: 'child', assetCode: 'USD', assetScale: 6, balance: String(-amountOf(i)), minBalance: '-1000000000', maxBalance: null })
    }
    // newest first; the second half sent a second later, so all of it is shown
    const times = s.recent.map((a) => a.activeAt)
    expect(times).toEqual([...times].sort((x, y) => y - x))
    for (let i = SENDERS / 2 + 1; i < SENDERS; i++) expect(recentIds).toContain(id(i))
    // an update is a few kilobytes, not one row per account
    expect(JSON.stringify(s).length).toBeLessThan(20_000)
  })

  it('reads a bounded number of records and balances per update, whatever the number of accounts', async () => {
    await redis.client.config('RESETSTAT')
    await snapshot()
    const calls = await commandCalls()
    // records (GET/MGET) and balances (HGETALL): the pinned and the recent ones, and the metrics hash; not 2,000 of either
    const reads = (calls.get('get') ?? 0) + (calls.get('mget') ?? 0) + (calls.get('hgetall') ?? 0)
    expect(reads).toBeLessThan(100)
    expect(calls.get('zcard')).toBeGreaterThanOrEqual(1)
    expect(calls.get('zrevrange')).toBeGreaterThanOrEqual(1)
    expect(calls.get('scan') ?? 0).toBe(0)
    expect(calls.get('keys') ?? 0).toBe(0)
  })

  it('finds any account by id for a logged-in viewer, and nothing for anyone else', async () => {
    const cookie = await logIn()
    // one that never sent a packet, so the dashboard does not show it
    const quiet = await lookUp(id(1500), cookie)
    expect(quiet.status).toBe(200)
    expect(quiet.json).toMatchObject({
      id: id(1500),
      relation: 'child',
      origin: 'admin',
      balance: '0',
      minBalance: '-1000000000',
      maxBalance: null,
      maxPacketAmount: null,
      creditsInFlight: '0',
      rpcUrlSet: false,
      hasOutgoingUrl: false,
      pinned: false,
    })
    expect((await lookUp(id(3), cookie)).json.balance).toBe(String(-amountOf(3)))
    expect((await lookUp('good', cookie)).json).toMatchObject({ relation: 'peer', origin: 'config', hasOutgoingUrl: true, pinned: true })
    expect((await lookUp('nobody', cookie)).status).toBe(404)
    expect((await lookUp('not an id', cookie)).status).toBe(404)
    // the same session check as the event stream
    expect((await lookUp(id(1500))).status).toBe(401)
    expect((await lookUp(id(1500), 'ilpfarm_dashboard=made-up')).status).toBe(401)
    const res = await request(`${farm.url}/dashboard/accounts/${id(1500)}`, { headers: { cookie } })
    expect(res.headers['cache-control']).toBe('no-store')
    await res.body.dump()
  })
})
