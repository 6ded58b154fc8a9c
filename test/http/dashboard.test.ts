import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type Browser, chromium, type Page } from 'playwright-core'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { CHROMIUM_INSTALL_TIMEOUT_MS, ensureChromium } from '../helpers/chromium.js'
import { account, ADMIN_TOKEN, adminSend, type IlpResponse, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, makeCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The dashboard in a real browser (Playwright driving Debian's chromium,
 * installed by ensureChromium when the machine has none):
 * log in with the admin token, find an account created through the admin
 * API by id (the page lists only pinned and recently active accounts), watch
 * it appear among the recently active after a payment with its new balance,
 * all without a reload; a screenshot goes to test-artifacts/dashboard.png.
 */
const ARTIFACTS = join(process.cwd(), 'test-artifacts')

let redis: TestRedis
let a: TestFarm
let b: TestFarm
let peer: TestPeer
let browser: Browser
let chromiumPath: string

// Its own hook, so a first install has its own (long) timeout and the farm's start keeps the usual one.
beforeAll(async () => {
  chromiumPath = await ensureChromium()
}, CHROMIUM_INSTALL_TIMEOUT_MS)

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer(fulfillKnown)
  const accounts = [
    account('alice', { minBalance: '-1000000000' }),
    account('good', { relation: 'peer', outgoing: { url: peer.url }, routes: ['test.good'] }),
  ]
  // two workers on one Redis: the session made on one is good on the other
  const keyPrefix = `d${Math.random().toString(36).slice(2, 8)}:`
  a = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 0 })
  b = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 1 })
  browser = await chromium.launch({
    executablePath: chromiumPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  })
})

afterAll(async () => {
  await browser?.close()
  await a?.close()
  await b?.close()
  await peer?.close()
  await redis?.close()
})

/** A page that records every script error and console error (a CSP violation shows up as one), and every URL answered 404. */
async function openDashboard(farm: TestFarm): Promise<{ page: Page; errors: string[]; notFound: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1100 } })
  const errors: string[] = []
  const notFound: string[] = []
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text())
  })
  page.on('pageerror', (e) => errors.push(e.message))
  page.on('response', (r) => {
    if (r.status() === 404) notFound.push(new URL(r.url()).pathname)
  })
  await page.goto(`${farm.url}/dashboard`)
  return { page, errors, notFound }
}

async function logIn(page: Page, token: string): Promise<void> {
  await page.locator('#token').fill(token)
  await page.locator('#login-form button[type="submit"]').click()
}

const poll = { timeout: 8000, interval: 100 }

/** `fulfilled`, or `rejected <code> <message>` (what a failed assertion should say). */
function outcome(res: IlpResponse): string {
  if (res.packet?.type === 13) return 'fulfilled'
  const reject = res.packet?.data as { code?: string; message?: string } | undefined
  return `rejected ${reject?.code} ${reject?.message} (HTTP ${res.status})`
}

async function loggedInOn(farm: TestFarm, cookie: string): Promise<boolean> {
  const res = await request(`${farm.url}/dashboard/session`, { headers: { cookie } })
  return ((await res.body.json()) as { loggedIn: boolean }).loggedIn
}

describe('dashboard', () => {
  it('refuses a wrong token and streams nothing without a session', async () => {
    const { page } = await openDashboard(a)
    await logIn(page, 'not-the-admin-token')
    await expect.poll(() => page.locator('#login-error').textContent(), poll).toBe('Wrong admin token.')
    expect(await page.locator('#board').isHidden()).toBe(true)
    expect(await page.context().cookies()).toEqual([])
    const events = await request(`${a.url}/dashboard/events`)
    expect(events.statusCode).toBe(401)
    await events.body.dump()
    await page.close()
  })

  it('logs in, finds a new account by id, shows it as recently active with its balance change live, without reloading', async () => {
    const { page, errors, notFound } = await openDashboard(a)
    // the page names its icon inline: the browser asks the farm for no /favicon.ico (a 404)
    expect(await page.locator('link[rel="icon"]').getAttribute('href')).toBe('data:,')
    await logIn(page, ADMIN_TOKEN)
    // the peer is pinned: always listed; alice, a plain child, only once she sends packets
    await page.locator('#accounts tr[data-account="good"]').waitFor({ timeout: 8000 })
    expect(await page.locator('#accounts tr[data-account="alice"]').count()).toBe(0)
    // the token went in a POST body: not in the URL, and the cookie is out of the page's reach
    expect(page.url()).toBe(`${a.url}/dashboard`)
    const [cookie] = await page.context().cookies()
    expect(cookie).toMatchObject({ name: 'ilpfarm_dashboard', httpOnly: true, sameSite: 'Strict', path: '/dashboard' })
    expect(cookie!.value).not.toContain(ADMIN_TOKEN)
    // the session is in Redis: the other worker takes it
    const session = `${cookie!.name}=${cookie!.value}`
    expect(await loggedInOn(b, session)).toBe(true)

    // a marker that a reload would wipe out
    await page.evaluate(() => {
      ;(globalThis as { noReloadMarker?: string }).noReloadMarker = 'still the same page'
    })

    const created = await adminSend(b.url, 'POST', '/admin/accounts', {
      id: 'carol',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      minBalance: '-1000000000',
      incoming: { token: 'carol-token' },
    })
    expect(created.status).toBe(201)
    await expect.poll(() => page.locator('#account-count').textContent(), poll).toBe('3')
    // not listed (never active): found through the search box, read from Redis by worker A
    expect(await page.locator('#recent tr[data-account="carol"]').count()).toBe(0)
    const search = async (id: string) => {
      await page.locator('#search-id').fill(id)
      await page.locator('#search-form button[type="submit"]').click()
    }
    const found = page.locator('#search-result[data-state="found"][data-account="carol"]')
    await search('carol')
    await found.waitFor({ timeout: 8000 })
    expect(await found.locator('[data-field="balance"]').getAttribute('data-value')).toBe('0')
    expect(await found.locator('[data-field="balance"]').textContent()).toBe('0.000000 USD')
    expect(await found.locator('[data-field="relation"]').textContent()).toBe('child')
    expect(await found.locator('[data-field="origin"]').textContent()).toBe('admin')
    expect(await found.locator('[data-field="min"]').textContent()).toBe('-1000.000000 USD')
    const errorsBefore = errors.length
    await search('nobody')
    await expect.poll(() => page.locator('#search-result').textContent(), poll).toBe('No account nobody.')
    // the browser reports the 404 itself; that one is expected, nothing else
    await expect.poll(() => errors.length, poll).toBe(errorsBefore + 1)
    expect(errors.splice(errorsBefore)).toEqual(['Failed to load resource: the server responded with a status of 404 (Not Found)'])

    const paid = await sendIlp(b.url, 'carol', prepareTo('test.good.shop', '2500000', knownCondition()))
    expect(outcome(paid)).toBe('fulfilled')
    // a payment makes her recently active: she appears, with her new balance, on the page that was open
    const carolBalance = page.locator('#recent tr[data-account="carol"] [data-field="balance"]')
    await expect.poll(() => carolBalance.getAttribute('data-value').catch(() => null), poll).toBe('-2500000')
    expect(await carolBalance.textContent()).toBe('-2.500000 USD')
    expect(await page.locator('#recent tr[data-account="carol"] [data-field="active"]').textContent()).toMatch(/^\d+ s ago$/)
    await expect.poll(() => page.locator('#graph').getAttribute('data-nodes'), poll).toContain('a:carol')
    await search('carol')
    await expect.poll(() => found.locator('[data-field="balance"]').getAttribute('data-value').catch(() => null), poll).toBe('-2500000')
    const refused = await sendIlp(b.url, 'alice', prepareTo('g.nowhere', '1', knownCondition()))
    expect(outcome(refused)).toMatch(/^rejected F02/)
    await expect.poll(() => page.locator('#total-fulfilled').textContent(), poll).toBe('1')
    await expect.poll(() => page.locator('#reject-totals').textContent(), poll).toBe('F02: 1')
    expect(await page.locator('#rejected-f99').textContent()).toBe('')
    // an F99 (what a STREAM receiver answers a probe with) is counted, and said apart
    const probe = await sendIlp(b.url, 'alice', prepareTo('test.good.shop', '1', makeCondition().condition))
    expect(outcome(probe)).toMatch(/^rejected F99/)
    await expect.poll(() => page.locator('#reject-totals').textContent(), poll).toBe('F02: 1 · F99: 1')
    await expect.poll(() => page.locator('#total-rejected').textContent(), poll).toBe('2')
    expect(await page.locator('#rejected-f99').textContent()).toBe(' (1 of them F99: mostly STREAM receivers answering probes, not failed payments)')
    await expect.poll(() => page.locator('#workers tbody tr').count(), poll).toBe(2)
    expect(await page.locator('#leader').textContent()).not.toBe('none')

    // the routes table: a next hop's packets as "fulfilled of counted" (carol's payment and this one; the F99 above
    // is the receiver's answer, not the hop's fault, and is not counted), and the policy's score apart, as a score
    const second = await sendIlp(b.url, 'alice', prepareTo('test.good.shop', '1000', knownCondition()))
    expect(outcome(second)).toBe('fulfilled')
    expect(await page.locator('#routes thead th').allTextContents()).toEqual(['Prefix', 'Next hop', 'Source', 'Fulfilled', 'Score', 'State'])
    const route = page.locator('#routes tr[data-prefix="test.good"][data-account="good"]')
    await expect.poll(() => route.locator('[data-field="fulfilled"]').textContent().catch(() => null), poll).toBe('2 of 2')
    expect(await route.locator('[data-field="prefix"]').textContent()).toBe('test.good')
    expect(await route.locator('[data-field="state"]').textContent()).toBe('ok')
    // (2 + 1) / (2 + 2) at most, on the worker that saw both; 0.50 on one that weighs no packets of a lone next hop
    const score = await route.locator('[data-field="score"]').textContent()
    expect(score).toMatch(/^0\.\d\d$/)
    expect(Number(score)).toBeGreaterThanOrEqual(0.5)
    expect(Number(score)).toBeLessThanOrEqual(0.75)
    expect(await page.locator('#routes').textContent()).not.toContain('%')

    expect(await page.evaluate(() => (globalThis as { noReloadMarker?: string }).noReloadMarker)).toBe('still the same page')
    mkdirSync(ARTIFACTS, { recursive: true })
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true })
    expect(errors).toEqual([])
    // the account lookup of "nobody" is the one 404 the page met: no icon, script or style was missing
    expect(notFound).toEqual(['/dashboard/accounts/nobody'])

    // logging out ends the session on every worker
    await page.locator('#logout').click()
    await page.locator('#login').waitFor({ state: 'visible', timeout: 5000 })
    expect(await loggedInOn(b, session)).toBe(false)
    const events = await request(`${b.url}/dashboard/events`, { headers: { cookie: session } })
    expect(events.statusCode).toBe(401)
    await events.body.dump()
    await page.close()
  })

  it('a closing worker ends its open event streams instead of waiting for them', async () => {
    const c = await startTestFarm(redis.url, [account('alice')], { redis: { keyPrefix: a.config.redis.keyPrefix } }, { shard: 2 })
    const login = await request(`${c.url}/dashboard/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: ADMIN_TOKEN }),
    })
    expect(login.statusCode).toBe(204)
    await login.body.dump()
    const session = String(login.headers['set-cookie']).split(';')[0]!
    const events = await request(`${c.url}/dashboard/events`, { headers: { cookie: session } })
    expect(events.statusCode).toBe(200)
    expect(events.headers['content-type']).toContain('text/event-stream')
    let received = ''
    const ended = new Promise<void>((resolve) => {
      events.body.on('data', (chunk: Buffer) => (received += chunk.toString()))
      events.body.on('end', resolve)
      events.body.on('error', () => resolve())
    })
    await expect.poll(() => received.includes('event: snapshot'), poll).toBe(true)
    const started = Date.now()
    await c.close()
    await ended
    expect(Date.now() - started).toBeLessThan(3000)
  })
})
