import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Coordinator } from '../../src/farm/coordinator.js'
import { freePort, startEmbeddedRedis } from '../../src/farm/embedded-redis.js'
import { Heartbeat } from '../../src/farm/heartbeat.js'
import { LeaderLease } from '../../src/farm/leader.js'
import { resolveOrphans } from '../../src/farm/orphans.js'
import { Sweeper } from '../../src/farm/sweeper.js'
import { Coordination, LOCAL_HOST_ID } from '../../src/store/coordination.js'
import { type HotSetEntry, Ledger, newBootId, type Reservation } from '../../src/store/ledger.js'
import { connectRedis } from '../../src/store/redis.js'
import { ADMIN_TOKEN, adminGet, startTestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { Keys } from '../../src/store/keys.js'

/**
 * Heartbeats, the leader lease, the sweeper and the orphan audit against a
 * real redis-server, with real timers (small TTLs so each test stays short).
 */
const log = pino({ level: 'silent' })
let redis: TestRedis
let client: Redis
let seq = 0
const cleanups: Array<() => Promise<void> | void> = []

beforeAll(async () => {
  redis = await startTestRedis()
  client = new Redis(redis.url)
})
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})
afterAll(async () => {
  client?.disconnect()
  await redis?.close()
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const prefix = () => `c${++seq}:`

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await probe()
    if (value !== undefined && value !== false) return value
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(25)
  }
}

function reservation(fields: Partial<Reservation> = {}): Reservation {
  return {
    incomingAccount: 'alice',
    packetId: `p${++seq}`,
    shard: 0,
    inAmount: '100',
    outgoingAccount: 'bob',
    outAmount: '100',
    expiresAtMs: Date.now() + 30_000,
    minBalance: '-100000',
    maxBalance: undefined,
    ...fields,
  }
}

async function balances(ledger: Ledger): Promise<{ alice: string; bob: string; sum: bigint }> {
  const alice = (await ledger.balance('alice')).balance
  const bob = (await ledger.balance('bob')).balance
  return { alice, bob, sum: BigInt(alice) + BigInt(bob) }
}

describe('hotSet entries name their owner incarnation', () => {
  it('records the boot id next to the shard; the shard still takes the refund', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '3-abc' })
    const r = reservation({ shard: 3 })
    expect(await ledger.prepare(r)).toBe('ok')
    expect(await client.hget(ledger.keys.hotSet, `alice|${r.packetId}`)).toBe(`3|3-abc|${r.expiresAtMs}|100|bob|100|0`)
    const [entry] = await ledger.hotSet()
    expect(entry).toEqual({
      incomingAccount: 'alice',
      packetId: r.packetId,
      shard: 3,
      bootId: '3-abc',
      expiresAtMs: r.expiresAtMs,
      inAmount: '100',
      outgoingAccount: 'bob',
      outAmount: '100',
      headroom: '0',
    })
    expect(await ledger.reject('alice', r.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('alice')).hot).toEqual({ '3': '100' })
  })

  it('reads and refunds an entry written before owners were recorded (6 parts)', async () => {
    const ledger = new Ledger(client, prefix())
    await client.hset(ledger.keys.hotSet, 'alice|old', '1|5000|70|bob|70|0')
    await client.hset(ledger.keys.account('alice'), 'cold', '-70')
    expect(await ledger.hotSet()).toEqual([expect.objectContaining({ shard: 1, bootId: '', expiresAtMs: 5000, inAmount: '70' })])
    expect(await ledger.reject('alice', 'old', 'bob', { bootId: '', expiresAtMs: 5000 })).toBe('ok')
    expect((await balances(ledger)).alice).toBe('0')
  })

  it('a guarded reject refunds only the entry it names (owner and expiry), never a newer one under the same id', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '0-old' })
    const r = reservation({ expiresAtMs: Date.now() - 1000 })
    await ledger.prepare(r)
    expect(await ledger.reject('alice', r.packetId, 'bob')).toBe('ok')
    const again = reservation({ packetId: r.packetId, bootId: '0-new' })
    await ledger.prepare(again)
    expect(await ledger.reject('alice', r.packetId, 'bob', { bootId: '0-old', expiresAtMs: r.expiresAtMs })).toBe('gone')
    expect(await ledger.reject('alice', r.packetId, 'bob', { bootId: '0-new', expiresAtMs: r.expiresAtMs })).toBe('gone')
    expect(await ledger.hotSet()).toHaveLength(1)
    expect(await ledger.reject('alice', r.packetId, 'bob', { bootId: '0-new', expiresAtMs: again.expiresAtMs })).toBe('ok')
    expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
  })
})

describe('heartbeats', () => {
  it('a worker is live while it beats, dead once its TTL has passed without a beat, and gone at once after a clean stop', async () => {
    const coordination = new Coordination(client, new Ledger(client, prefix()).keys)
    const heartbeat = new Heartbeat({ coordination, shard: 4, bootId: '4-aaa', log, intervalMs: 100, ttlMs: 300 })
    await heartbeat.start()
    cleanups.push(() => heartbeat.stop())
    const live = await coordination.liveWorkers()
    expect(live.get(4)).toMatchObject({ shard: 4, bootId: '4-aaa', pid: process.pid, ttlMs: 300 })
    expect(live.get(4)!.heartbeatAgeMs).toBeLessThan(300)
    // Still there after several TTLs: it keeps beating.
    await sleep(700)
    expect((await coordination.liveWorkers()).get(4)?.bootId).toBe('4-aaa')
    await heartbeat.stop()
    expect((await coordination.liveWorkers()).has(4)).toBe(false)

    // A process that dies without a word: its last beat expires after the TTL.
    const t0 = Date.now()
    await coordination.beat({ shard: 5, bootId: '5-bbb', pid: 1, host: 'h', startedAt: t0, beatAt: t0, ttlMs: 300 })
    expect((await coordination.liveWorkers()).get(5)?.bootId).toBe('5-bbb')
    await until('the heartbeat to expire', async () => !(await coordination.liveWorkers()).has(5))
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250)
  })

  it('a slow after-beat task (the orphan audit) never delays the beats: the worker stays live', async () => {
    const coordination = new Coordination(client, new Ledger(client, prefix()).keys)
    let audits = 0
    const heartbeat = new Heartbeat({
      coordination,
      shard: 6,
      bootId: '6-slow',
      log,
      intervalMs: 100,
      ttlMs: 300,
      afterBeat: async () => {
        audits++
        await sleep(1000) // far longer than the TTL
      },
    })
    await heartbeat.start()
    cleanups.push(() => heartbeat.stop())
    for (let i = 0; i < 8; i++) {
      await sleep(150)
      expect((await coordination.liveWorkers()).get(6)?.bootId).toBe('6-slow')
    }
    expect(audits).toBeGreaterThanOrEqual(1)
    expect(audits).toBeLessThanOrEqual(2) // never two at once
    await heartbeat.stop()
  })

  it('a restarted shard names its new incarnation; a clean stop of the old one does not delete the new beat', async () => {
    const coordination = new Coordination(client, new Ledger(client, prefix()).keys)
    const now = Date.now()
    await coordination.beat({ shard: 0, bootId: '0-old', pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 5000 })
    expect(await coordination.beat({ shard: 0, bootId: '0-new', pid: 2, host: 'h', startedAt: now, beatAt: now, ttlMs: 5000 })).toBe('0-old')
    expect(await coordination.stopBeat(0, '0-old')).toBe(false)
    expect((await coordination.liveWorkers()).get(0)?.bootId).toBe('0-new')
  })
})

describe('leader lease', () => {
  it('one holder at a time; when the holder stops renewing, another takes over after the TTL, and not before the old one gave up', async () => {
    const keysPrefix = prefix()
    // The first candidate has a connection of its own, so it can be cut off as a dead process would be.
    const doomed = new Redis(redis.url, { maxRetriesPerRequest: 0, enableOfflineQueue: false, lazyConnect: true })
    doomed.on('error', () => undefined)
    await doomed.connect()
    const events: Array<{ who: string; what: 'acquire' | 'lose'; at: number }> = []
    const lease = (r: Redis, who: string) =>
      new LeaderLease({
        coordination: new Coordination(r, new Ledger(r, keysPrefix).keys),
        bootId: who,
        log,
        ttlMs: 600,
        renewIntervalMs: 100,
        onAcquire: () => events.push({ who, what: 'acquire', at: Date.now() }),
        onLose: () => events.push({ who, what: 'lose', at: Date.now() }),
      })
    const a = lease(doomed, 'A')
    const b = lease(client, 'B')
    cleanups.push(() => a.stop(), () => b.stop(), () => doomed.disconnect())
    await a.start()
    await b.start()
    expect(a.isLeader).toBe(true)
    expect(b.isLeader).toBe(false)
    // Renewals keep it: several TTLs later A still leads.
    await sleep(1000)
    expect(a.isLeader).toBe(true)
    expect(b.isLeader).toBe(false)
    expect(await client.get(new Keys(keysPrefix).leader)).toBe('A')

    const cutAt = Date.now()
    doomed.disconnect() // A can no longer renew
    await until('B to take over', async () => b.isLeader)
    const took = Date.now() - cutAt
    expect(took).toBeGreaterThanOrEqual(400)
    expect(took).toBeLessThan(600 + 100 + 1300) // TTL + one renew interval, with room for a busy machine
    expect(a.isLeader).toBe(false)
    const lostAt = events.find((e) => e.who === 'A' && e.what === 'lose')!.at
    const acquiredAt = events.find((e) => e.who === 'B' && e.what === 'acquire')!.at
    expect(lostAt).toBeLessThan(acquiredAt) // never two leaders at once
    expect(await client.get(new Keys(keysPrefix).leader)).toBe('B')
  })

  it('a leader that stops releases the lease: the next one takes over within a renew interval', async () => {
    const keysPrefix = prefix()
    const lease = (who: string) =>
      new LeaderLease({ coordination: new Coordination(client, new Ledger(client, keysPrefix).keys), bootId: who, log, ttlMs: 5000, renewIntervalMs: 100 })
    const a = lease('A')
    const b = lease('B')
    cleanups.push(() => a.stop(), () => b.stop())
    await a.start()
    await b.start()
    expect(a.isLeader).toBe(true)
    const stoppedAt = Date.now()
    await a.stop()
    await until('B to take over', async () => b.isLeader)
    expect(Date.now() - stoppedAt).toBeLessThan(1000)
  })
})

describe('sweeper', () => {
  it('refunds only the expired entries of dead owners, exactly, and leaves live owners and unexpired entries alone', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader' })
    const coordination = new Coordination(client, ledger.keys)
    const now = Date.now()
    const beat = (shard: number, bootId: string) =>
      coordination.beat({ shard, bootId, pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 60_000 })
    await beat(0, '0-restarted') // shard 0 was restarted: '0-crashed' is dead
    await beat(1, '1-live')
    // shard 2 has no heartbeat at all
    const past = now - 1000
    const future = now + 60_000
    const packets = {
      deadExpired: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: past, inAmount: '1', outAmount: '1' }),
      deadExpired2: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: past - 5, inAmount: '20', outAmount: '20' }),
      deadUnexpired: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: future, inAmount: '300', outAmount: '300' }),
      liveExpired: reservation({ shard: 1, bootId: '1-live', expiresAtMs: past, inAmount: '4000', outAmount: '4000' }),
      missingExpired: reservation({ shard: 2, bootId: '2-gone', expiresAtMs: past, inAmount: '50000', outAmount: '50000' }),
    }
    for (const r of Object.values(packets)) expect(await ledger.prepare(r)).toBe('ok')
    expect((await balances(ledger)).alice).toBe('-54321')

    const refunded: HotSetEntry[] = []
    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 300, heartbeatIntervalMs: 100, batchSize: 2, onRefund: (e) => refunded.push(e) })
    cleanups.push(() => sweeper.close())
    const first = await sweeper.sweep()
    // shard 2's missing heartbeat is not yet taken for death: the sweeper has just started watching
    expect(first).toEqual({ refunded: 2, liveOwner: 1, waiting: 1, gone: 0, failed: 0 })
    expect(refunded.map((e) => e.packetId).sort()).toEqual([packets.deadExpired.packetId, packets.deadExpired2.packetId].sort())
    expect(refunded[0]).toMatchObject({ incomingAccount: 'alice', outgoingAccount: 'bob', bootId: '0-crashed', shard: 0 })
    const afterFirst = await ledger.balance('alice')
    expect(afterFirst.balance).toBe('-54300')
    expect(afterFirst.hot['0']).toBe('21') // refunds go back to the shard that reserved

    await sleep(450) // > heartbeat TTL + interval of watching Redis answer
    // the first scan kept the dead owners' entries it could not refund yet: no second scan is needed
    expect(sweeper.pendingCount).toBe(2)
    expect(await sweeper.sweep()).toEqual({ refunded: 1, liveOwner: 0, waiting: 0, gone: 0, failed: 0 })
    expect(sweeper.pendingCount).toBe(1)
    expect((await balances(ledger)).alice).toBe('-4300')
    const left = (await ledger.hotSet()).map((e) => e.packetId).sort()
    expect(left).toEqual([packets.deadUnexpired.packetId, packets.liveExpired.packetId].sort())
    // Nothing was credited to the next hop; every refunded unit is back.
    expect((await balances(ledger)).bob).toBe('0')

    // The live owner settles its own; the dead owner's last one is refunded once it has expired.
    expect(await ledger.fulfill('alice', packets.liveExpired.packetId, 'bob')).toBe('ok')
    expect(await sweeper.sweep(future + 1)).toMatchObject({ refunded: 1, liveOwner: 0 })
    expect(await ledger.hotSet()).toEqual([])
    expect(await balances(ledger)).toEqual({ alice: '-4000', bob: '4000', sum: 0n })
  })

  it('scans the hotSet only when the workers change (or after a lost connection, or every fullScanIntervalMs)', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader' })
    const coordination = new Coordination(client, ledger.keys)
    const now = Date.now()
    const beat = (shard: number, bootId: string) =>
      coordination.beat({ shard, bootId, pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 60_000 })
    await beat(3, '3-first')
    const expired = reservation({ shard: 3, bootId: '3-first', expiresAtMs: now - 1000, inAmount: '5', outAmount: '5' })
    expect(await ledger.prepare(expired)).toBe('ok')
    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 300, heartbeatIntervalMs: 100 })
    cleanups.push(() => sweeper.close())
    const scans = async () => Number(/cmdstat_hscan:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
    const before = await scans()
    expect(await sweeper.sweep()).toMatchObject({ refunded: 0, liveOwner: 1 }) // its owner is alive: left to it
    expect(await scans()).toBe(before + 1)
    // a packet of the live owner arriving later: nothing to do for the sweeper, and no scan
    expect(await ledger.prepare(reservation({ shard: 3, bootId: '3-first', expiresAtMs: now - 500, inAmount: '7', outAmount: '7' }))).toBe('ok')
    expect(await sweeper.sweep()).toMatchObject({ refunded: 0, liveOwner: 0 })
    expect(await scans()).toBe(before + 1)
    // the shard restarts: '3-first' is dead, the next sweep scans and refunds both of its entries
    await beat(3, '3-second')
    expect(await sweeper.sweep()).toMatchObject({ refunded: 2 })
    expect(await scans()).toBe(before + 2)
    expect(await ledger.hotSet()).toEqual([])
    expect((await balances(ledger)).alice).toBe('0')
    // a lost connection makes the next sweep scan again (Redis may have come back from an older file)
    client.emit('close')
    await sweeper.sweep()
    expect(await scans()).toBe(before + 3)
    // and so does the periodic full scan
    const periodic = new Sweeper({ ledger, coordination, log, fullScanIntervalMs: 0 })
    cleanups.push(() => periodic.close())
    await periodic.sweep()
    await periodic.sweep()
    expect(await scans()).toBe(before + 5)
  })

  it('runs on the leader only: the Coordinator starts it with the lease and sweeps on its interval', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: newBootId(0) })
    const crashed = reservation({ shard: 7, bootId: '7-crashed', expiresAtMs: Date.now() + 300 })
    await ledger.prepare(crashed)
    const refunded: string[] = []
    const coordinator = new Coordinator({ ledger, shard: 0, log, heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600, sweepIntervalMs: 100 })
    coordinator.onRefund = (e) => refunded.push(e.packetId)
    cleanups.push(() => coordinator.stop())
    await coordinator.start()
    expect(coordinator.isLeader).toBe(true)
    await until('the crashed worker’s packet to be refunded', async () => refunded.length > 0)
    expect(refunded).toEqual([crashed.packetId])
    expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
    await coordinator.stop()
    expect(coordinator.isLeader).toBe(false)
    expect(await client.get(ledger.keys.leader)).toBeNull()
    expect(await client.exists(ledger.keys.worker(LOCAL_HOST_ID, 0))).toBe(0)
  })
})

describe('start-up after everything went down', () => {
  it('Redis restarted from its append-only file: the new leader’s sweeps refund what the old workers left', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'ilp-farm-restart-'))
    const port = await freePort()
    let aof = await startEmbeddedRedis({ dataDir, port, appendonly: true })
    cleanups.push(async () => {
      await aof.stop()
      rmSync(dataDir, { recursive: true, force: true })
    })
    const keysPrefix = prefix()
    const before = new Redis(aof.url)
    const expiresAtMs = Date.now() + 400
    const now = Date.now()
    for (const [shard, bootId] of [[0, '0-before'], [1, '1-before']] as const) {
      const ledger = new Ledger(before, keysPrefix, { bootId })
      await new Coordination(before, ledger.keys).beat({ shard, bootId, pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 300 })
      for (const inAmount of ['1', '20']) expect(await ledger.prepare(reservation({ shard, inAmount, outAmount: inAmount, expiresAtMs }))).toBe('ok')
    }
    before.disconnect()
    await aof.stop() // everything goes down; Redis writes its append-only file
    aof = await startEmbeddedRedis({ dataDir, port, appendonly: true })

    const after = new Redis(aof.url)
    cleanups.push(() => after.disconnect())
    const ledger = new Ledger(after, keysPrefix, { bootId: newBootId(0) })
    expect(await ledger.hotSet()).toHaveLength(4) // the packets in flight came back with Redis
    expect((await balances(ledger)).alice).toBe('-42')
    // The old heartbeats expire (Redis keeps absolute expiry times); only shard 0 comes back, with a new
    // boot id, and shard 1 has no worker any more.
    await until('the old heartbeats to expire', async () => (await new Coordination(after, ledger.keys).liveWorkers()).size === 0)
    const refunded: string[] = []
    const coordinator = new Coordinator({ ledger, shard: 0, log, heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600, sweepIntervalMs: 100 })
    coordinator.onRefund = (e) => refunded.push(`${e.bootId}:${e.inAmount}`)
    cleanups.push(() => coordinator.stop())
    await coordinator.start()
    await until('every old entry to be refunded', async () => (await ledger.hotSet()).length === 0, 5000)
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAtMs) // not before they expired
    expect(refunded.sort()).toEqual(['0-before:1', '0-before:20', '1-before:1', '1-before:20'])
    expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
    expect((await ledger.balance('alice')).hot).toEqual({ '0': '21', '1': '21' })
  })
})

describe('a worker’s own orphans', () => {
  it('a prepare that timed out but ran later in Redis is refunded by its own worker', async () => {
    const fast = await connectRedis(redis.url, { commandTimeoutMs: 150 })
    cleanups.push(() => fast.disconnect())
    const ledger = new Ledger(fast, prefix(), { bootId: newBootId(0) })
    const observer = new Ledger(client, ledger.keys.prefix)
    await ledger.load()
    const r = reservation()
    // Writes wait in Redis longer than the client waits: the prepare times out, then runs.
    await client.call('CLIENT', 'PAUSE', '500', 'WRITE')
    await expect(ledger.prepare(r)).rejects.toThrow(/timed out/i)
    expect(ledger.own.suspects.size).toBe(1)
    await until('the paused prepare to run', async () => (await observer.hotSet()).length === 1)
    expect((await balances(observer)).alice).toBe('-100')
    // The sweeper would leave it (its owner is alive); the owner refunds it.
    expect(await resolveOrphans(ledger)).toEqual({ examined: 1, refunded: 1 })
    expect(await observer.hotSet()).toEqual([])
    expect(await balances(observer)).toEqual({ alice: '0', bob: '0', sum: 0n })
    expect(ledger.own.auditNeeded).toBe(false)
  })

  it('never refunds a packet its worker still has in flight; after a reconnection it checks the whole hotSet', async () => {
    const own = await connectRedis(redis.url, { commandTimeoutMs: 2000 })
    cleanups.push(() => own.disconnect())
    const bootId = newBootId(0)
    const ledger = new Ledger(own, prefix(), { bootId })
    const inFlight = reservation({ inAmount: '5', outAmount: '5' })
    expect(await ledger.prepare(inFlight)).toBe('ok')
    // An entry with this boot id that no flow of this process holds: e.g. its settlement was lost
    // when Redis came back from an append-only file older than the worker's last write.
    const lost = reservation({ inAmount: '7', outAmount: '7' })
    await new Ledger(client, ledger.keys.prefix, { bootId }).prepare(lost)
    // Someone else's entry is never this worker's business.
    await new Ledger(client, ledger.keys.prefix, { bootId: '1-other' }).prepare(reservation({ inAmount: '11', outAmount: '11' }))

    const coordinator = new Coordinator({ ledger, shard: 0, log, heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600 })
    cleanups.push(() => coordinator.stop())
    await coordinator.start()
    await sleep(300)
    expect((await ledger.hotSet()).length).toBe(3) // no reason to look yet
    expect(ledger.own.isOpen(`alice|${inFlight.packetId}`)).toBe(true)

    await client.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes') // the worker's connection drops and comes back
    const observer = new Ledger(client, ledger.keys.prefix)
    await until('the lost entry to be refunded', async () => (await observer.hotSet()).length === 2)
    const left = (await observer.hotSet()).map((e) => e.packetId)
    expect(left).toContain(inFlight.packetId)
    expect(left).not.toContain(lost.packetId)
    expect((await balances(observer)).alice).toBe('-16')
    expect(await until('the worker to be connected', async () => own.status === 'ready')).toBe(true)
    expect(await ledger.fulfill('alice', inFlight.packetId, 'bob')).toBe('ok')
  })
})

describe('GET /admin/workers', () => {
  it('lists the live workers with their heartbeat age and the leader; needs the admin token', async () => {
    const farm = await startTestFarm(redis.url, [{ id: 'alice', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 't' } }])
    cleanups.push(() => farm.close())
    const { status, json } = await adminGet<{ leader: string; workers: Array<Record<string, unknown>> }>(farm.url, '/admin/workers')
    expect(status).toBe(200)
    const bootId = farm.worker.coordinator.bootId
    expect(bootId).toMatch(/^0-[0-9a-f]{12}$/)
    expect(json.leader).toBe(bootId)
    expect(json.workers).toEqual([
      expect.objectContaining({ shard: 0, bootId, pid: process.pid, leader: true, heartbeatAgeMs: expect.any(Number) as number }),
    ])
    expect(json.workers[0]!.heartbeatAgeMs as number).toBeLessThan(3000)
    expect((await adminGet(farm.url, '/admin/workers', null)).status).toBe(401)
    expect((await adminGet(farm.url, '/admin/workers', `${ADMIN_TOKEN}x`)).status).toBe(401)
  })
})
