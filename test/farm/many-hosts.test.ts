import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { FarmConfigInput } from '../../src/config/schema.js'
import { freePort } from '../../src/farm/embedded-redis.js'
import { startLocalCluster } from '../../src/farm/local-cluster.js'
import { connectRedis, type RedisClient } from '../../src/store/redis.js'
import { type AsyncPeer, startAsyncPeer } from '../helpers/async.js'
import { type CliRun, cleanEnv, killAllClis, runCli, sleep, workerPids } from '../helpers/cli.js'
import { adminGet, balanceOf, prepareTo, sendIlp } from '../helpers/farm.js'
import { recordsLeft } from '../helpers/in-flight.js'
import { type Receiver, runLoad, type SentPacket, startReceiver, sum, summarize } from '../helpers/load.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis } from '../helpers/redis.js'

/**
 * Many hosts: two real `ilp-farm start` supervisors (2 workers each) on two
 * HTTP ports stand for two machines sharing one Redis as one farm. Both
 * hosts' workers show in GET /admin/workers under their host ids, with one
 * leader for the whole farm; packets sent to either port are fulfilled, also
 * through an async next hop whose replies land on the other host (each
 * host's http.publicUrl names the other, as if a load balancer had sent the
 * callback there) and reach their owner over Redis pub/sub; a third
 * supervisor with a host id in use refuses to start. Then one whole
 * host (supervisor and workers: its process group) is SIGKILLed while its
 * packets wait on a slow next hop, and the other host's leader refunds
 * them once they have expired: the balances come back to what the
 * fulfilled packets made them. The dead host comes back under its host id;
 * then the leader's host is killed the same way, and a worker of the other
 * host takes the lease and sweeps. Each kill lands under load: senders
 * against both ports (to a next hop that answers at once) keep packets in
 * flight on both hosts; after the longest expiry every balance sums to zero
 * and no record of a packet in flight is left.
 *
 * The same scenario runs on one Redis (REDIS_URL) and on a real Redis Cluster
 * of 3 masters (REDIS_CLUSTER), where a packet in flight is two records in
 * the slots of its two accounts, often on two masters.
 */

const PREFIX = 'hosts:'
const HOSTS = ['host-a', 'host-b'] as const
const AMOUNT = 100n
const IN_FLIGHT = 6
const IN_FLIGHT_EXPIRY_MS = 5_000
/** Senders per host in the load under each kill, and their packets' expiry (shorter than the slow ones'). */
const LOAD_SENDERS = 3
const LOAD_EXPIRY_MS = 3_000

/** The Redis the farm runs on: how the supervisors are told, and a client for the assertions. */
interface Store {
  env: NodeJS.ProcessEnv
  client: RedisClient
  close(): Promise<void>
}

const STORES: Array<{ name: string; start: (dataDir: string) => Promise<Store> }> = [
  {
    name: 'one Redis',
    async start() {
      const redis = await startTestRedis()
      return { env: { REDIS_URL: redis.url }, client: redis.client, close: () => redis.close() }
    },
  },
  {
    name: 'a Redis Cluster of 3 masters',
    async start(dataDir) {
      const cluster = await startLocalCluster({ dataDir, masters: 3, replicasPerMaster: 0 })
      try {
        await cluster.waitHealthy(30_000)
        const client = await connectRedis({ cluster: [...cluster.seeds] }, { commandTimeoutMs: 2_000 })
        return {
          env: { REDIS_CLUSTER: cluster.seeds.join(',') },
          client,
          async close() {
            client.disconnect()
            await cluster.stop()
          },
        }
      } catch (err) {
        await cluster.stop()
        throw err
      }
    },
  },
]

let store: Store
let peer: TestPeer
/** An async next hop (account carol): 202, then the fulfill POSTed to the Callback-Url. */
let carol: AsyncPeer
/** The next hop of the load (account sink): fulfills every packet after up to 20 ms. */
let receiver: Receiver
let tmp: string
/** The peer answers at once while true; else it never answers (a slow next hop). */
let peerAnswers = true

interface WorkersStatus {
  leader: string | null
  leaderHostId: string | null
  hosts: Array<{ hostId: string; workers: number; leader: boolean }>
  workers: Array<{ hostId: string; shard: number; bootId: string; pid: number; leader: boolean }>
}

/** Each store gets its own Redis, next hops and folder (carol's and the receiver's tallies start at zero). */
async function setUp(startStore: (dataDir: string) => Promise<Store>): Promise<void> {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-hosts-'))
  peerAnswers = true
  ;[store, peer, carol, receiver] = await Promise.all([
    startStore(join(tmp, 'redis')),
    startTestPeer((prepare) => (peerAnswers ? fulfillKnown(prepare) : 'hang')),
    startAsyncPeer('carol-token', (prepare) => ({ reply: fulfillKnown(prepare), delayMs: 20 })),
    startReceiver(20),
  ])
}

async function tearDown(): Promise<void> {
  await killAllClis()
  await peer?.close()
  await carol?.close()
  await receiver?.close()
  await store?.close()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
}

function configFor(hostId: string, port = 0, publicUrl?: string): string {
  const config: FarmConfigInput = {
    ilpAddress: 'test.farm',
    http: { host: '127.0.0.1', port, ...(publicUrl ? { publicUrl } : {}) },
    workers: 2,
    redis: { keyPrefix: PREFIX, dataDir: join(tmp, 'unused') },
    admin: { token: 'admin-token-for-tests' },
    log: { level: 'warn' },
    // short timings: a dead host is noticed and swept within seconds
    farm: { hostId, heartbeatIntervalMs: 250, heartbeatTtlMs: 1_000, leaderLeaseMs: 1_500, sweepIntervalMs: 250 },
    maxHoldTimeMs: 10_000,
    minMessageWindowMs: 500,
    accounts: [
      { id: 'sender', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000000000000', incoming: { token: 'sender-token' } },
      { id: 'receiver', relation: 'peer', assetCode: 'USD', assetScale: 6, outgoing: { url: peer.url }, routes: ['test.receiver'] },
      {
        id: 'carol',
        relation: 'peer',
        assetCode: 'USD',
        assetScale: 6,
        incoming: { token: 'carol-token' },
        outgoing: { url: carol.url, token: 'to-carol', mode: 'async' },
        routes: ['test.carol'],
      },
      // the load: loader pays sink, whose next hop answers at once
      { id: 'loader', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000000000000', incoming: { token: 'loader-token' } },
      { id: 'sink', relation: 'peer', assetCode: 'USD', assetScale: 6, outgoing: { url: receiver.url }, routes: ['test.sink'] },
    ],
  }
  const file = join(tmp, `${hostId}-${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(file, stringify(config))
  return file
}

async function startHost(hostId: string, port: number, publicUrl: string): Promise<{ run: CliRun; url: string }> {
  const run = runCli(['start', '--config', configFor(hostId, port, publicUrl)], { env: cleanEnv(store.env) })
  const [, url] = await run.waitFor(/listening on (http:\/\/\S+)/, 60_000)
  return { run, url: url! }
}

async function workers(url: string): Promise<WorkersStatus> {
  const { status, json } = await adminGet<WorkersStatus>(url, '/admin/workers')
  expect(status).toBe(200)
  return json
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined && value !== false) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`)
    await sleep(100)
  }
}

/** Sends one packet of AMOUNT to test.receiver through the host at `url`; its outcome, or the transport error. */
async function pay(url: string, expiresInMs = 10_000, destination = 'test.receiver.bob'): Promise<string> {
  try {
    const res = await sendIlp(url, 'sender', prepareTo(destination, String(AMOUNT), knownCondition(), expiresInMs))
    if (res.status !== 200 || !res.packet) return `HTTP ${res.status}`
    return res.packet.typeString === 'ilp_fulfill' ? 'fulfilled' : `rejected ${(res.packet.data as { code?: string }).code ?? ''}`
  } catch (err) {
    return `error ${(err as Error).message}`
  }
}

/** Load on every host's port until stopped: LOAD_SENDERS senders each, loader to sink. */
function startLoad(urls: string[]): { stop(): Promise<SentPacket[][]> } {
  const stop = new AbortController()
  const runs = urls.map((farmUrl) =>
    runLoad({
      farmUrl,
      account: 'loader',
      token: 'loader-token',
      destination: 'test.sink.x',
      concurrency: LOAD_SENDERS,
      durationMs: 60_000,
      expiresInMs: LOAD_EXPIRY_MS,
      requestTimeoutMs: 10_000,
      signal: stop.signal,
    }),
  )
  return {
    stop() {
      stop.abort()
      return Promise.all(runs)
    },
  }
}

/** What the load under one kill did: fulfilled on the survivor's port, and on the dead host's until it died. */
interface LoadUnderKill {
  /** Amounts the loader saw fulfilled. */
  fulfilled: bigint
  /** Amounts of packets the dead host had when it died: the loader got no answer, so each was fulfilled or is refunded. */
  unknown: bigint
}

/** Starts the load on every url, and resolves once it flows (packets fulfilled by the sink's next hop). */
async function loadUnderWay(urls: string[]): Promise<{ stop(): Promise<SentPacket[][]> }> {
  const before = receiver.fulfilled.size
  const load = startLoad(urls)
  await until('the load to flow', async () => receiver.fulfilled.size - before >= 10 * urls.length, 10_000).catch(async (err) => {
    await load.stop()
    throw err
  })
  return load
}

/**
 * The load's balances after every packet of it has expired and been settled:
 * they sum to zero; the sink got every packet the loader saw fulfilled, and of
 * those a dead host had, at most all of them (each either fulfilled or refunded).
 * Also every balance of the farm sums to zero.
 */
async function expectLoadSettled(url: string, fulfilled: bigint, unknown: bigint): Promise<void> {
  const balances = await Promise.all(['sender', 'receiver', 'carol', 'loader', 'sink'].map((id) => balanceOf(url, id)))
  const [loader, sink] = balances.slice(3).map(BigInt) as [bigint, bigint]
  expect(loader + sink).toBe(0n)
  expect(sink).toBeGreaterThanOrEqual(fulfilled)
  expect(sink).toBeLessThanOrEqual(fulfilled + unknown)
  expect(sink).toBeLessThanOrEqual(sum(receiver.fulfilled.values())) // never more than the next hop fulfilled
  expect(sum(balances.map(BigInt))).toBe(0n)
}

/** Checks the load under one kill, `killedAt` the moment the kill had completed. */
function checkLoad(doomedSent: SentPacket[], survivorSent: SentPacket[], killedAt: number): LoadUnderKill {
  const survivorLoad = summarize(survivorSent)
  const doomedLoad = summarize(doomedSent)
  // spread over both hosts: each served the load until the kill, the survivor all of it
  expect(survivorSent.filter((p) => p.outcome === 'fulfill').length, survivorLoad).toBeGreaterThan(0)
  expect(survivorSent.filter((p) => p.outcome !== 'fulfill'), survivorLoad).toEqual([])
  expect(doomedSent.filter((p) => p.outcome === 'fulfill' && p.sentAt < killedAt).length, doomedLoad).toBeGreaterThan(0)
  expect(doomedSent.filter((p) => p.outcome === 'reject'), doomedLoad).toEqual([])
  expect(doomedSent.filter((p) => p.outcome === 'fulfill' && p.sentAt > killedAt), doomedLoad).toEqual([]) // nothing answered there after its death
  const lost = doomedSent.filter((p) => p.outcome === 'error' && p.sentAt <= killedAt)
  return {
    fulfilled: sum([...doomedSent, ...survivorSent].filter((p) => p.outcome === 'fulfill').map((p) => p.amount)),
    unknown: sum(lost.map((p) => p.amount)),
  }
}

describe.each(STORES.map((s) => [s.name, s.start] as const))('many hosts on %s', (_name, start) => {
  beforeAll(() => setUp(start), 120_000)
  afterAll(tearDown, 60_000)

  it(
    'two supervisors form one farm with one leader; a host id in use is refused; a whole host killed mid-flight is swept by the other, also the leader’s',
    async () => {
      // two ports, two hosts; each one's publicUrl is the other's address: every async reply lands on the other host
      const [portA, portB] = [await freePort(), await freePort()]
      const plan = {
        'host-a': { port: portA, publicUrl: `http://127.0.0.1:${portB}` },
        'host-b': { port: portB, publicUrl: `http://127.0.0.1:${portA}` },
      }
      const [a, b] = await Promise.all(HOSTS.map((h) => startHost(h, plan[h].port, plan[h].publicUrl)))
      const hosts = { 'host-a': a!, 'host-b': b! }
      expect([a!.url, b!.url]).toEqual([`http://127.0.0.1:${portA}`, `http://127.0.0.1:${portB}`])

      // 1. Both hosts' workers, under their host ids, from either host; one leader farm-wide.
      const status = await until('both hosts with 2 live workers each', async () => {
        const s = await workers(a!.url)
        return s.workers.length === 4 && s.workers.some((w) => w.leader) ? s : undefined
      }, 20_000)
      expect(status.hosts.map((h) => [h.hostId, h.workers])).toEqual([
        ['host-a', 2],
        ['host-b', 2],
      ])
      expect(status.workers.map((w) => `${w.hostId}/${w.shard}`)).toEqual(['host-a/0', 'host-a/1', 'host-b/0', 'host-b/1'])
      for (const h of HOSTS) {
        expect(status.workers.filter((w) => w.hostId === h).map((w) => w.pid).sort()).toEqual(workerPids(hosts[h].run).sort())
      }
      expect(new Set(status.workers.map((w) => w.bootId)).size).toBe(4)
      expect(status.workers.filter((w) => w.leader)).toHaveLength(1)
      expect(status.hosts.filter((h) => h.leader)).toHaveLength(1)
      const leader = status.workers.find((w) => w.leader)!
      expect(status.leader).toBe(leader.bootId)
      expect(status.leaderHostId).toBe(leader.hostId)
      const fromB = await workers(b!.url)
      expect(fromB.workers.map((w) => w.bootId)).toEqual(status.workers.map((w) => w.bootId))
      expect(fromB.leader).toBe(status.leader)
      // ilp-farm workers, against either host, lists both hosts' workers by host id
      const listing = runCli(['workers'], { env: cleanEnv({ ILP_FARM_URL: b!.url, ILP_FARM_ADMIN_TOKEN: 'admin-token-for-tests' }) })
      expect(await listing.waitForExit(30_000)).toEqual({ code: 0, signal: null })
      expect(listing.stdout()).toContain(`4 live workers on 2 hosts; leader: ${status.leader} on ${leader.hostId}`)
      for (const h of HOSTS) expect(listing.stdout().split('\n').filter((line) => line.startsWith(`│ ${h} `))).toHaveLength(2)

      // 2. Packets sent to either port are fulfilled.
      const outcomes = await Promise.all([...Array(10).keys()].map((i) => pay(i % 2 === 0 ? a!.url : b!.url)))
      expect(outcomes).toEqual(Array(10).fill('fulfilled'))
      let synced = 10n * AMOUNT
      expect(await balanceOf(a!.url, 'sender')).toBe(String(-synced))
      expect(await balanceOf(b!.url, 'receiver')).toBe(String(synced))

      // Async next hop: the reply to a packet owned by a worker of one host is POSTed to the other host,
      // which hands it to the owner over Redis pub/sub (replies:<boot id>); the owner answers its caller.
      const asyncOutcomes = await Promise.all([...Array(6).keys()].map((i) => pay(i % 2 === 0 ? a!.url : b!.url, 10_000, 'test.carol.x')))
      expect(asyncOutcomes).toEqual(Array(6).fill('fulfilled'))
      expect(carol.received).toHaveLength(6)
      // the callback's own answer can reach carol after the fulfill has reached the sender
      await until('carol to have the answers to its callbacks', async () => carol.received.every((r) => r.callbackStatuses.length > 0), 5_000)
      for (const r of carol.received) {
        expect(r.headers.prefer).toBe('respond-async')
        expect(r.callbackStatuses).toEqual([200])
      }
      const callbackHosts = carol.received.map((r) => new URL(String(r.headers['callback-url'])).port).sort()
      expect(callbackHosts).toEqual([...Array(3).fill(String(portA)), ...Array(3).fill(String(portB))].sort())
      const asynced = 6n * AMOUNT
      let fulfilled = synced + asynced
      expect(await balanceOf(b!.url, 'sender')).toBe(String(-fulfilled))
      expect(await balanceOf(a!.url, 'carol')).toBe(String(asynced))

      // 3. A third supervisor with a host id whose workers are live refuses to start: clear error, exit code 1.
      const clash = runCli(['start', '--config', configFor('host-a')], { env: cleanEnv(store.env) })
      const exit = await clash.waitForExit(60_000)
      expect(exit.code).not.toBe(0)
      expect(exit.code).not.toBeNull()
      expect(clash.stderr()).toMatch(/ilp-farm: worker \d exited \(code 1\) before it was listening: farm\.hostId "host-a" is in use: \d live workers? of that host id run under another supervisor/)
      expect(clash.stdout()).not.toMatch(/listening on/)
      // the farm is as it was: the same 4 workers, the same leader
      const after = await workers(a!.url)
      expect(after.workers.map((w) => w.bootId)).toEqual(status.workers.map((w) => w.bootId))
      expect(after.leader).toBe(status.leader)

      // 4. The host without the leader is SIGKILLed whole while its packets wait on a slow next hop.
      const doomed = HOSTS.find((h) => h !== leader.hostId)!
      const survivor = hosts[leader.hostId as (typeof HOSTS)[number]]
      peerAnswers = false
      const receivedBefore = peer.received.length
      const inFlight = [...Array(IN_FLIGHT).keys()].map(() => pay(hosts[doomed].url, IN_FLIGHT_EXPIRY_MS))
      const sentAt = Date.now()
      await until('the packets to reach the slow next hop', async () => peer.received.length - receivedBefore === IN_FLIGHT, 5_000)
      expect(await balanceOf(survivor.url, 'sender')).toBe(String(-fulfilled - BigInt(IN_FLIGHT) * AMOUNT)) // reserved
      const inflight = await adminGet<unknown[]>(survivor.url, '/admin/inflight')
      expect(inflight.json).toHaveLength(IN_FLIGHT)
      // senders against both hosts: the kill lands with the load's packets in flight on both
      const load = await loadUnderWay([hosts[doomed].url, survivor.url])
      await hosts[doomed].run.kill() // the supervisor's process group: it and its workers at once
      const killedAt = Date.now()
      expect(workerPids(hosts[doomed].run)).toEqual([])
      expect((await Promise.all(inFlight)).every((o) => o.startsWith('error'))).toBe(true) // their connections died with the host

      // The survivor's workers are the farm now; its leader stays (or becomes) the only one.
      const alone = await until('the dead host’s workers to drop out', async () => {
        const s = await workers(survivor.url)
        return s.workers.length === 2 && s.workers.every((w) => w.hostId === leader.hostId) ? s : undefined
      }, 10_000)
      expect(alone.hosts).toEqual([{ hostId: leader.hostId, workers: 2, leader: true }])
      expect(alone.workers.filter((w) => w.leader)).toHaveLength(1)
      const [doomedSent, survivorSent] = await load.stop()
      const loaded = checkLoad(doomedSent!, survivorSent!, killedAt)

      // 5. Once they have expired, the survivor's leader refunds the dead host's packets: the balances are what
      // the fulfilled packets made them, and sum to zero.
      // (The sweeper tells owners apart by boot id, whatever their host: Coordination.liveWorkers() of every host.)
      await until(
        'the dead host’s expired packets to be refunded',
        async () => (await balanceOf(survivor.url, 'sender')) === String(-fulfilled),
        IN_FLIGHT_EXPIRY_MS + 20_000,
      )
      expect(Date.now() - sentAt).toBeGreaterThanOrEqual(IN_FLIGHT_EXPIRY_MS - 500) // not before they expired
      const [sender, receiver, carolBalance] = await Promise.all(['sender', 'receiver', 'carol'].map((id) => balanceOf(survivor.url, id)))
      expect(sender).toBe(String(-fulfilled))
      expect(receiver).toBe(String(synced))
      expect(carolBalance).toBe(String(asynced))
      expect(BigInt(sender!) + BigInt(receiver!) + BigInt(carolBalance!)).toBe(0n)
      expect((await adminGet<unknown[]>(survivor.url, '/admin/inflight')).json).toEqual([])
      // the load's packets too (they expired first): nothing left in flight, and the load's balances sum to zero
      expect(await recordsLeft(store.client, PREFIX)).toBe(0)
      let loadFulfilled = loaded.fulfilled
      let loadUnknown = loaded.unknown
      await expectLoadSettled(survivor.url, loadFulfilled, loadUnknown)

      // The survivor serves on.
      peerAnswers = true
      expect(await pay(survivor.url)).toBe('fulfilled')
      synced += AMOUNT
      fulfilled += AMOUNT
      expect(await balanceOf(survivor.url, 'receiver')).toBe(String(synced))

      // 6. The dead host comes back under its host id (its old heartbeats have expired: it starts at once).
      const back = await startHost(doomed, plan[doomed].port, plan[doomed].publicUrl)
      const whole = await until('both hosts again', async () => {
        const s = await workers(back.url)
        return s.workers.length === 4 ? s : undefined
      }, 20_000)
      expect(whole.hosts).toEqual(
        HOSTS.map((h) => ({ hostId: h, workers: 2, leader: h === leader.hostId })), // the lease stayed where it was
      )

      // 7. Now the leader's host dies whole, its packets waiting on the slow next hop: a worker of the other
      // host takes the lease, and its sweeps refund them once they have expired.
      peerAnswers = false
      const receivedNow = peer.received.length
      const inFlightAgain = [...Array(IN_FLIGHT).keys()].map(() => pay(survivor.url, IN_FLIGHT_EXPIRY_MS))
      await until('the packets to reach the slow next hop', async () => peer.received.length - receivedNow === IN_FLIGHT, 5_000)
      expect(await balanceOf(back.url, 'sender')).toBe(String(-fulfilled - BigInt(IN_FLIGHT) * AMOUNT))
      const loadAgain = await loadUnderWay([survivor.url, back.url])
      await survivor.run.kill()
      const killedAgainAt = Date.now()
      expect((await Promise.all(inFlightAgain)).every((o) => o.startsWith('error'))).toBe(true)
      const taken = await until('a worker of the other host to take the lease', async () => {
        const s = await workers(back.url)
        return s.workers.length === 2 && s.leaderHostId === doomed ? s : undefined
      }, 15_000)
      expect(taken.hosts).toEqual([{ hostId: doomed, workers: 2, leader: true }])
      expect(taken.workers.filter((w) => w.leader)).toHaveLength(1)
      const [leaderHostSent, backSent] = await loadAgain.stop()
      const loadedAgain = checkLoad(leaderHostSent!, backSent!, killedAgainAt)
      await until('the leader’s host’s expired packets to be refunded', async () => (await balanceOf(back.url, 'sender')) === String(-fulfilled), IN_FLIGHT_EXPIRY_MS + 20_000)
      const final = await Promise.all(['sender', 'receiver', 'carol'].map((id) => balanceOf(back.url, id)))
      expect(final).toEqual([String(-fulfilled), String(synced), String(asynced)])
      expect((await adminGet<unknown[]>(back.url, '/admin/inflight')).json).toEqual([])
      expect(await recordsLeft(store.client, PREFIX)).toBe(0)
      loadFulfilled += loadedAgain.fulfilled
      loadUnknown += loadedAgain.unknown
      await expectLoadSettled(back.url, loadFulfilled, loadUnknown)
    },
    200_000,
  )
})
