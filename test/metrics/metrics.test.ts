import { serializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultHostId } from '../../src/config/host-id.js'
import { account, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { getMetrics, parseScrape, type Scrape, samplesOf, valueOf } from './scrape.js'

/** The host id of the test farms: no farm.hostId, port 0 (a free port chosen per worker). */
const HOST_ID = defaultHostId(0)

/**
 * GET /metrics answers for the whole farm: two workers (two shards on one
 * Redis and key prefix) each take part of a known mix of packets, and a
 * scrape of either one, parsed by a Prometheus text parser, counts every
 * packet exactly, by account, outcome and code, amounts and latency included.
 * Children have series of their own only when opted in (`metrics: true`);
 * the others' packets are counted together under account="(other)", so the
 * farm-wide totals stay exact.
 */
let redis: TestRedis
let a: TestFarm
let b: TestFarm
const peers: TestPeer[] = []
const keyPrefix = `m${Math.random().toString(36).slice(2, 8)}:`
let accounts: ReturnType<typeof account>[]

beforeAll(async () => {
  redis = await startTestRedis()
  const good = await startTestPeer(fulfillKnown)
  const nay = await startTestPeer(() => serializeIlpReject({ code: 'F99', triggeredBy: 'test.nay', message: 'no', data: Buffer.alloc(0) }))
  peers.push(good, nay)
  accounts = [
    account('alice', { minBalance: '-1000000000', metrics: true }),
    account('bob', { minBalance: '-1000000000', metrics: true }),
    account('tight', { metrics: true }), // minBalance 0: every prepare gets T04
    // children without opt-in: counted under (other)
    account('dave', { minBalance: '-1000000000' }),
    account('erin', { minBalance: '-1000000000' }),
    account('good', { relation: 'peer', outgoing: { url: good.url }, routes: ['test.good'], maxBalance: '1000000000' }),
    account('nay', { relation: 'peer', outgoing: { url: nay.url }, routes: ['test.nay'] }),
  ]
  a = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 0 })
  b = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 1 })
})

afterAll(async () => {
  await a?.close()
  await b?.close()
  await Promise.all(peers.map((p) => p.close()))
  await redis?.close()
})

/** Sends `n` prepares of amounts base, base+1, … and checks each answer; returns the sum of the amounts. */
async function send(farm: TestFarm, from: string, destination: string, n: number, base: number, expect: string): Promise<number> {
  let sum = 0
  await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const amount = base + i
      sum += amount
      const res = await sendIlp(farm.url, from, prepareTo(destination, String(amount), knownCondition()))
      const got = res.packet?.type === 13 ? 'fulfill' : (res.packet?.data as { code: string }).code
      if (got !== expect) throw new Error(`${from} → ${destination}: expected ${expect}, got ${got}`)
    }),
  )
  return sum
}

/** Scrapes until `ready` holds (the other worker adds its counts within a second), at most 5 s. */
async function scrapeUntil(farm: TestFarm, ready: (s: Scrape) => boolean): Promise<Scrape> {
  const deadline = Date.now() + 5000
  for (;;) {
    const res = await getMetrics(farm.url)
    expect(res.status).toBe(200)
    const scrape = parseScrape(res.text)
    if (ready(scrape) || Date.now() > deadline) return scrape
    await new Promise((r) => setTimeout(r, 100))
  }
}

const packets = (s: Scrape, account: string, outcome: string, code?: string) =>
  valueOf(s, 'ilpfarm_packets_total', code === undefined ? { account, outcome } : { account, outcome, code }) ?? 0

/** The farm-wide count of an outcome: the sum over every account label, (other) included. */
const farmWide = (s: Scrape, outcome: string) =>
  samplesOf(s, 'ilpfarm_packets_total')
    .filter((x) => x.labels.outcome === outcome)
    .reduce((n, x) => n + x.value, 0)

describe('GET /metrics', () => {
  it('needs the admin token', async () => {
    expect((await getMetrics(a.url, null)).status).toBe(401)
    expect((await getMetrics(a.url, 'alice-token')).status).toBe(401)
    expect((await getMetrics(a.url, 'wrong')).status).toBe(401)
  })

  it('counts every packet of both workers exactly, by account, outcome and code; amounts; latency; gauges', async () => {
    // worker A: alice; worker B: bob and tight
    const aliceFulfilled = await send(a, 'alice', 'test.good.x', 7, 1000, 'fulfill')
    const aliceRejected = (await send(a, 'alice', 'test.nay.x', 3, 10, 'F99')) + (await send(a, 'alice', 'g.unrouted', 2, 20, 'F02'))
    const bobFulfilled = await send(b, 'bob', 'test.good.y', 5, 500, 'fulfill')
    const bobRejected = await send(b, 'bob', 'test.nay.y', 4, 30, 'F99')
    const tightRejected = await send(b, 'tight', 'test.good.z', 2, 40, 'T04')
    // not opted in: one on each worker
    const othersFulfilled = (await send(b, 'dave', 'test.good.d', 4, 2000, 'fulfill')) + (await send(a, 'erin', 'test.good.e', 2, 3000, 'fulfill'))
    const othersRejected = (await send(b, 'dave', 'test.nay.d', 1, 50, 'F99')) + (await send(a, 'erin', 'g.unrouted', 2, 60, 'F02'))

    const s = await scrapeUntil(
      a,
      (x) => packets(x, 'bob', 'fulfilled') === 5 && packets(x, 'tight', 'rejected', 'T04') === 2 && packets(x, '(other)', 'fulfilled') === 6 && packets(x, '(other)', 'rejected', 'F99') === 1,
    )
    const counted = samplesOf(s, 'ilpfarm_packets_total')
    expect(counted.map((c) => ({ ...c.labels, value: c.value })).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y)))).toEqual(
      [
        { account: 'alice', outcome: 'fulfilled', value: 7 },
        { account: 'alice', outcome: 'rejected', code: 'F02', value: 2 },
        { account: 'alice', outcome: 'rejected', code: 'F99', value: 3 },
        { account: 'bob', outcome: 'fulfilled', value: 5 },
        { account: 'bob', outcome: 'rejected', code: 'F99', value: 4 },
        { account: 'tight', outcome: 'rejected', code: 'T04', value: 2 },
        { account: '(other)', outcome: 'fulfilled', value: 6 },
        { account: '(other)', outcome: 'rejected', code: 'F02', value: 2 },
        { account: '(other)', outcome: 'rejected', code: 'F99', value: 1 },
      ].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    )
    expect(s.families.get('ilpfarm_packets_total')?.type).toBe('COUNTER')
    // no series of their own for children without opt-in, and the farm-wide totals count every packet
    expect(s.text).not.toMatch(/account="(dave|erin)"/)
    expect(farmWide(s, 'fulfilled')).toBe(7 + 5 + 6)
    expect(farmWide(s, 'rejected')).toBe(3 + 2 + 4 + 2 + 1 + 2)

    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: 'alice', outcome: 'fulfilled' })).toBe(aliceFulfilled)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: 'alice', outcome: 'rejected' })).toBe(aliceRejected)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: 'bob', outcome: 'fulfilled' })).toBe(bobFulfilled)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: 'bob', outcome: 'rejected' })).toBe(bobRejected)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: 'tight', outcome: 'rejected' })).toBe(tightRejected)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: '(other)', outcome: 'fulfilled' })).toBe(othersFulfilled)
    expect(valueOf(s, 'ilpfarm_packet_amount_total', { account: '(other)', outcome: 'rejected' })).toBe(othersRejected)

    // the latency histogram counts every packet once, in buckets that add up
    expect(valueOf(s, 'ilpfarm_packet_duration_seconds_count', { outcome: 'fulfilled' })).toBe(18)
    expect(valueOf(s, 'ilpfarm_packet_duration_seconds_count', { outcome: 'rejected' })).toBe(14)
    expect(valueOf(s, 'ilpfarm_packet_duration_seconds_bucket', { outcome: 'rejected', le: '+Inf' })).toBe(14)
    expect(valueOf(s, 'ilpfarm_packet_duration_seconds_sum', { outcome: 'fulfilled' })).toBeGreaterThan(0)
    const buckets = samplesOf(s, 'ilpfarm_packet_duration_seconds_bucket').filter((x) => x.labels.outcome === 'fulfilled')
    expect(buckets.map((x) => x.value)).toEqual([...buckets.map((x) => x.value)].sort((x, y) => x - y)) // cumulative
    expect(s.families.get('ilpfarm_packet_duration_seconds')?.type).toBe('HISTOGRAM')

    // the packet scripts' Redis calls (FCALLs, each a batch of transitions), timed on both workers
    const fcalls = samplesOf(s, 'ilpfarm_redis_command_duration_seconds_count').filter((x) => x.labels.command?.startsWith('fcall:'))
    expect(fcalls.length).toBeGreaterThan(0)
    expect(fcalls.reduce((n, x) => n + x.value, 0)).toBeGreaterThan(0)

    // gauges, read from Redis at the scrape
    expect(valueOf(s, 'ilpfarm_account_balance', { account: 'alice' })).toBe(-aliceFulfilled)
    expect(valueOf(s, 'ilpfarm_account_balance', { account: 'good' })).toBe(aliceFulfilled + bobFulfilled + othersFulfilled)
    expect(String(valueOf(s, 'ilpfarm_account_balance', { account: 'bob' }))).toBe(await balanceOf(a.url, 'bob'))
    expect(valueOf(s, 'ilpfarm_account_min_balance', { account: 'alice' })).toBe(-1000000000)
    expect(valueOf(s, 'ilpfarm_account_max_balance', { account: 'good' })).toBe(1000000000)
    expect(valueOf(s, 'ilpfarm_account_max_balance', { account: 'alice' })).toBeUndefined()
    expect(valueOf(s, 'ilpfarm_account_info', { account: 'good', relation: 'peer', asset_code: 'USD', asset_scale: '6' })).toBe(1)
    expect(valueOf(s, 'ilpfarm_account_info', { account: 'alice', relation: 'child', asset_code: 'USD', asset_scale: '6' })).toBe(1)
    // gauges too only for the pinned and opted-in accounts
    expect(valueOf(s, 'ilpfarm_account_balance', { account: 'dave' })).toBeUndefined()
    expect(valueOf(s, 'ilpfarm_packets_in_flight')).toBe(0)
    expect(valueOf(s, 'ilpfarm_workers_live')).toBe(2)
    // both workers run under one host id (one test process): labelled with it and their shard
    expect(valueOf(s, 'ilpfarm_worker_up', { host_id: HOST_ID, shard: '0' })).toBe(1)
    expect(valueOf(s, 'ilpfarm_worker_up', { host_id: HOST_ID, shard: '1' })).toBe(1)
    expect((valueOf(s, 'ilpfarm_worker_leader', { host_id: HOST_ID, shard: '0' }) ?? 0) + (valueOf(s, 'ilpfarm_worker_leader', { host_id: HOST_ID, shard: '1' }) ?? 0)).toBe(1)
    expect(valueOf(s, 'ilpfarm_worker_heartbeat_age_seconds', { host_id: HOST_ID, shard: '1' })).toBeLessThan(3)

    // the other worker answers the same
    const fromB = parseScrape((await getMetrics(b.url)).text)
    expect(packets(fromB, 'alice', 'fulfilled')).toBe(7)
    expect(packets(fromB, 'tight', 'rejected', 'T04')).toBe(2)
    expect(packets(fromB, '(other)', 'rejected', 'F02')).toBe(2)
    expect(farmWide(fromB, 'fulfilled')).toBe(18)
  })

  it('keeps the counts through a worker restart, shows the dead shard, and counts on', async () => {
    const before = await scrapeUntil(a, () => true)
    const bobBefore = packets(before, 'bob', 'fulfilled')
    await b.close() // its last counts go to Redis as it closes
    const afterClose = await scrapeUntil(a, (x) => valueOf(x, 'ilpfarm_workers_live') === 1)
    expect(packets(afterClose, 'bob', 'fulfilled')).toBe(bobBefore)
    expect(valueOf(afterClose, 'ilpfarm_worker_up', { host_id: HOST_ID, shard: '1' })).toBe(0)

    b = await startTestFarm(redis.url, accounts, { redis: { keyPrefix } }, { shard: 1 })
    await send(b, 'bob', 'test.good.w', 3, 700, 'fulfill')
    const afterRestart = parseScrape((await getMetrics(b.url)).text)
    expect(packets(afterRestart, 'bob', 'fulfilled')).toBe(bobBefore + 3)
  })
})
