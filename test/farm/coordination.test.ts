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
import { type HotSetEntry, incomingRecordValue, Ledger, newBootId, outgoingRecordValue, type Reservation } from '../../src/store/ledger.js'
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

/** Reserves a packet as its owner's process would, whatever its expiry (the fence is Redis' clock). */
async function plant(ledger: Ledger, r: Reservation): Promise<void> {
  const expiresAtMs = r.expiresAtMs
  expect(await ledger.prepare({ ...r, expiresAtMs: Date.now() + 60_000 })).toBe('ok')
  if (expiresAtMs === Date.now() + 60_000) return
  const field = `${r.incomingAccount}|${r.packetId}`
  for (const [key, f] of [[ledger.keys.inflight(r.incomingAccount), r.packetId], [ledger.keys.credits(r.outgoingAccount), field]] as const) {
    // on one Redis, a packet to a next hop without a maxBalance has no outgoing record
    const value = (await client.hget(key, f))?.split('|')
    if (!value) continue
    value[key.endsWith(':inflight') ? 3 : 2] = String(expiresAtMs)
    await client.hset(key, f, value.join('|'))
  }
}

describe('packet records name their owner incarnation and attempt', () => {
  it('records the boot id and attempt in both records; the shard still takes the refund', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '3-abc' })
    // a next hop with a maxBalance: on one Redis the outgoing record is written only to hold its headroom
    const r = reservation({ shard: 3, maxBalance: '1000000' })
    expect(await ledger.prepare(r)).toBe('ok')
    const [entry] = await ledger.hotSet()
    expect(entry).toEqual({
      incomingAccount: 'alice',
      packetId: r.packetId,
      shard: 3,
      bootId: '3-abc',
      attempt: expect.any(String) as string,
      expiresAtMs: r.expiresAtMs,
      inAmount: '100',
      outgoingAccount: 'bob',
      outAmount: '100',
    })
    expect(await client.hget(ledger.keys.inflight('alice'), r.packetId)).toBe(`3|3-abc|${entry!.attempt}|${r.expiresAtMs}|100|bob|100`)
    expect(await client.hget(ledger.keys.credits('bob'), `alice|${r.packetId}`)).toBe(`3-abc|${entry!.attempt}|${r.expiresAtMs}|100|100`)
    // the owner and both accounts are indexed before the records are written
    expect(await client.sismember(ledger.keys.owners, '3-abc')).toBe(1)
    expect((await client.smembers(ledger.keys.ownerAccounts('3-abc'))).sort()).toEqual(['alice', 'bob'])
    expect(await ledger.reject('alice', r.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('alice')).hot).toEqual({ '3': '100' })
    expect(await client.exists(ledger.keys.inflight('alice'), ledger.keys.credits('bob'))).toBe(0)
  })

  it('a refund outside the flow names its reservation (owner and attempt): never a newer one under the same packet id', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '0-old' })
    const r = reservation()
    await ledger.prepare(r)
    const [first] = await ledger.hotSet()
    expect(await ledger.refundRecord(first!)).toBe('ok')
    expect(await ledger.refundRecord(first!)).toBe('gone')
    const again = reservation({ packetId: r.packetId })
    await ledger.prepare(again)
    expect(await ledger.refundRecord(first!)).toBe('gone')
    const [second] = await ledger.hotSet()
    expect(second!.attempt).not.toBe(first!.attempt)
    // the sweeper's time guard: Redis refuses the refund before it
    expect(await ledger.refundRecord(second!, Date.now() + 60_000)).toBe('early')
    expect(await ledger.hotSet()).toHaveLength(1)
    expect(await ledger.refundRecord(second!, Date.now() - 1)).toBe('ok')
    expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
  })

  it('a fulfill after the packet’s expiry: refused by Redis’ clock and refunded where the sweeper’s refund is two calls; honoured on one Redis until swept', async () => {
    for (const [split, owesCredits] of [[false, false], [true, false], [true, true]]) {
      const ledger = new Ledger(client, prefix(), { bootId: '0-late', split, owesCredits })
      const r = reservation({ expiresAtMs: Date.now() + 150 })
      expect(await ledger.prepare(r)).toBe('ok')
      await sleep(250)
      expect(await ledger.fulfill('alice', r.packetId, 'bob')).toBe(split ? 'gone' : 'ok')
      expect(await balances(ledger)).toEqual(split ? { alice: '0', bob: '0', sum: 0n } : { alice: '-100', bob: '100', sum: 0n })
      expect(await ledger.hotSet()).toEqual([])
      expect(await ledger.pendingCredits()).toEqual([])
      // split, an outgoing record after its expiry is refused, and the prepare with it (a packet without
      // one is its incoming record alone, as on one Redis, refunded by the sweeper after its expiry)
      if (split && !owesCredits) {
        expect(await ledger.prepare(reservation({ expiresAtMs: Date.now() - 1 }))).toBe('expired')
        expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
      }
    }
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
  it('settles only the expired records of dead owners, exactly, and leaves live owners and unexpired records alone', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader' })
    const coordination = new Coordination(client, ledger.keys)
    const now = Date.now()
    const beat = (shard: number, bootId: string) =>
      coordination.beat({ shard, bootId, pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 60_000 })
    await beat(0, '0-restarted') // shard 0 was restarted: '0-crashed' is dead
    await beat(1, '1-live')
    // shard 2 has no heartbeat at all
    const past = now - 1500
    const future = now + 60_000
    const packets = {
      deadExpired: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: past, inAmount: '1', outAmount: '1' }),
      deadExpired2: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: past - 5, inAmount: '20', outAmount: '20' }),
      deadUnexpired: reservation({ shard: 0, bootId: '0-crashed', expiresAtMs: future, inAmount: '300', outAmount: '300' }),
      liveExpired: reservation({ shard: 1, bootId: '1-live', expiresAtMs: past, inAmount: '4000', outAmount: '4000' }),
      missingExpired: reservation({ shard: 2, bootId: '2-gone', expiresAtMs: past, inAmount: '50000', outAmount: '50000' }),
    }
    // written as the owners' own processes would (the expiry fence is Redis' clock: these are in the past)
    for (const r of Object.values(packets)) await plant(ledger, r)
    expect((await balances(ledger)).alice).toBe('-54321')

    const refunded: HotSetEntry[] = []
    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 300, heartbeatIntervalMs: 100, batchSize: 2, onRefund: (e) => refunded.push(e) })
    cleanups.push(() => sweeper.close())
    // missing heartbeats are not taken for death yet: the sweeper has just started watching Redis answer
    expect(await sweeper.sweep()).toEqual({ refunded: 0, credited: 0, ownersDone: 0, waiting: 2, gone: 0, failed: 0 })
    await sleep(450) // > heartbeat TTL + interval of watching Redis answer
    expect(await sweeper.sweep()).toEqual({ refunded: 3, credited: 0, ownersDone: 1, waiting: 0, gone: 0, failed: 0 })
    expect(refunded.map((e) => e.packetId).sort()).toEqual([packets.deadExpired.packetId, packets.deadExpired2.packetId, packets.missingExpired.packetId].sort())
    expect(refunded.find((e) => e.bootId === '0-crashed')).toMatchObject({ incomingAccount: 'alice', outgoingAccount: 'bob', shard: 0 })
    const after = await ledger.balance('alice')
    expect(after.balance).toBe('-4300')
    expect(after.hot['0']).toBe('21') // refunds go back to the shard that reserved
    expect(after.hot['2']).toBe('50000')
    // '2-gone' had nothing else: it left the list of owners; '0-crashed' waits for its last packet's expiry
    expect((await client.smembers(ledger.keys.owners)).sort()).toEqual(['0-crashed', '1-live'])
    expect(sweeper.pendingCount).toBe(1)
    const left = (await ledger.hotSet()).map((e) => e.packetId).sort()
    expect(left).toEqual([packets.deadUnexpired.packetId, packets.liveExpired.packetId].sort())
    expect((await balances(ledger)).bob).toBe('0') // nothing credited: every refunded unit is back

    // The live owner settles its own; the dead owner's last one is refunded once it has expired (Redis' clock
    // says it has not: the guard holds it back, and the sweeper tries again).
    expect(await ledger.reject('alice', packets.liveExpired.packetId, 'bob')).toBe('ok')
    expect(await sweeper.sweep(future + 5_000)).toMatchObject({ refunded: 0, failed: 0 })
    expect((await ledger.hotSet()).map((e) => e.packetId)).toEqual([packets.deadUnexpired.packetId])
    await client.hset(ledger.keys.inflight('alice'), packets.deadUnexpired.packetId, (await client.hget(ledger.keys.inflight('alice'), packets.deadUnexpired.packetId))!.replace(String(future), String(past)))
    expect(await sweeper.sweep(future + 10_000)).toMatchObject({ refunded: 1, ownersDone: 1 })
    expect(await ledger.hotSet()).toEqual([])
    expect(await ledger.pendingCredits()).toEqual([])
    expect(await balances(ledger)).toEqual({ alice: '0', bob: '0', sum: 0n })
    expect(await client.smembers(ledger.keys.owners)).toEqual(['1-live'])
  })

  it('settles each state a dead owner can leave between a packet’s two calls (cluster order), by its records alone', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader' })
    const coordination = new Coordination(client, ledger.keys)
    const dead = '5-dead'
    const past = Date.now() - 5_000
    const packet = (id: string, attempt: string, amount: string) => ({
      incomingAccount: 'alice',
      packetId: id,
      outgoingAccount: 'bob',
      bootId: dead,
      attempt,
      shard: 5,
      expiresAtMs: past,
      inAmount: amount,
      outAmount: amount,
      headroom: '0',
    })
    const writeIncoming = (p: ReturnType<typeof packet>) => client.hset(ledger.keys.inflight(p.incomingAccount), p.packetId, incomingRecordValue(p))
    const writeOutgoing = (p: ReturnType<typeof packet>) => client.hset(ledger.keys.credits(p.outgoingAccount), `${p.incomingAccount}|${p.packetId}`, outgoingRecordValue(p))
    await client.sadd(ledger.keys.owners, dead)
    await client.sadd(ledger.keys.ownerAccounts(dead), 'alice', 'bob')
    // alice paid for every packet below (the incoming reservation): 1 + 20 + 300 + 4000 + 50000
    await client.hset(ledger.keys.account('alice'), 'cold', '-54321')
    // fulfilled: its incoming record is gone, its credit never landed → credit bob
    await writeOutgoing(packet('fulfilled', 'a', '1'))
    // reserved on the incoming side only (crash before the outgoing record) → refund alice
    await writeIncoming(packet('half-prepared', 'b', '20'))
    // in flight, both records → release bob's, refund alice
    await writeIncoming(packet('in-flight', 'c', '300'))
    await writeOutgoing(packet('in-flight', 'c', '300'))
    // the same packet id twice: attempt d was fulfilled (credit owed), attempt e reserved again and crashed
    // before its outgoing record (refused as a duplicate there): the two are never taken for a pair
    await writeOutgoing(packet('reused', 'd', '4000'))
    await writeIncoming(packet('reused', 'e', '50000'))

    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 100, heartbeatIntervalMs: 50 })
    cleanups.push(() => sweeper.close())
    await sweeper.sweep()
    await sleep(200)
    const report = await sweeper.sweep()
    expect(report).toMatchObject({ refunded: 3, credited: 2, ownersDone: 1, failed: 0 })
    expect(await balances(ledger)).toEqual({ alice: '-4001', bob: '4001', sum: 0n })
    expect(await client.exists(ledger.keys.inflight('alice'), ledger.keys.credits('bob'), ledger.keys.ownerAccounts(dead))).toBe(0)
    expect(await client.smembers(ledger.keys.owners)).toEqual([])
  })

  it('moves what a dead owner’s fulfills left owed (split, no outgoing records): owed, and a transfer begun; the account leaves the index after', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader', split: true })
    const coordination = new Coordination(client, ledger.keys)
    const dead = '5-dead'
    await client.sadd(ledger.keys.owners, dead)
    await client.sadd(ledger.keys.ownerAccounts(dead), 'alice')
    // alice paid for three fulfilled packets: 7 owed to bob; 30 to carol in a transfer begun and not applied
    await client.hset(ledger.keys.account('alice'), 'cold', '-37')
    const owed = ledger.keys.packetKeys('alice').owed
    await client.hset(owed, 'o:bob', '7', 'n:carol', '123', 't:carol', '123|30')
    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 100, heartbeatIntervalMs: 50 })
    cleanups.push(() => sweeper.close())
    await sweeper.sweep()
    await sleep(200)
    const report = await sweeper.sweep()
    expect(report).toMatchObject({ refunded: 0, credited: 2, ownersDone: 1, failed: 0 })
    const carol = (await ledger.balance('carol')).balance
    expect({ ...(await balances(ledger)), carol }).toEqual({ alice: '-37', bob: '7', carol: '30', sum: -30n })
    expect(await ledger.owedBy('alice')).toEqual([])
    expect(await client.exists(ledger.keys.ownerAccounts(dead))).toBe(0)
    // once: a second sweep (or any process) finds nothing to move
    expect(await ledger.transferAllOwed('alice')).toBe(0)
    expect((await ledger.balance('carol')).balance).toBe('30')
  })

  it('reads the index of dead owners only: a farm of live workers costs a sweep two reads', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: '9-leader' })
    const coordination = new Coordination(client, ledger.keys)
    const now = Date.now()
    await coordination.beat({ shard: 3, bootId: '3-first', pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 60_000 })
    for (let i = 0; i < 20; i++) await plant(ledger, reservation({ incomingAccount: `a${i}`, shard: 3, bootId: '3-first', expiresAtMs: now - 2000, inAmount: '5', outAmount: '5' }))
    const sweeper = new Sweeper({ ledger, coordination, log, heartbeatTtlMs: 300, heartbeatIntervalMs: 100 })
    cleanups.push(() => sweeper.close())
    const reads = async () => {
      const stats = await client.info('commandstats')
      return ['sscan', 'hscan', 'hgetall', 'scan', 'keys'].reduce((n, c) => n + Number(new RegExp(`cmdstat_${c}:calls=(\\d+)`).exec(stats)?.[1] ?? 0), 0)
    }
    const before = await reads()
    await sleep(450)
    expect(await sweeper.sweep()).toMatchObject({ refunded: 0, waiting: 0 }) // its owner is alive: left to it
    expect(await reads()).toBe(before)
    // the worker restarts: '3-first' is dead, and the next sweep reads its index and refunds its packets
    await coordination.beat({ shard: 3, bootId: '3-second', pid: 1, host: 'h', startedAt: now, beatAt: now, ttlMs: 60_000 })
    await sleep(450)
    expect(await sweeper.sweep()).toMatchObject({ refunded: 20, ownersDone: 1 })
    expect((await ledger.balance('a0')).balance).toBe('0')
    expect(await ledger.hotSet()).toEqual([])
  })

  it('each heartbeat says how many packets its worker holds: the farm-wide in-flight gauge sums them, no account is read', async () => {
    const ledger = new Ledger(client, prefix(), { bootId: newBootId(0) })
    const coordinator = new Coordinator({ ledger, shard: 0, log, heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600 })
    cleanups.push(() => coordinator.stop())
    await coordinator.start()
    const held = [reservation(), reservation()]
    for (const r of held) expect(await ledger.prepare(r)).toBe('ok')
    const inFlight = async () => [...(await new Coordination(client, ledger.keys).liveWorkers()).values()].reduce((n, w) => n + (w.inFlight ?? 0), 0)
    await until('the beat to say 2', async () => (await inFlight()) === 2)
    await ledger.fulfill('alice', held[0]!.packetId, 'bob')
    await until('the beat to say 1', async () => (await inFlight()) === 1)
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
    // its owner index names both accounts already (it is written before a process's first packet on an account)
    const warm = reservation()
    expect(await ledger.prepare(warm)).toBe('ok')
    expect(await ledger.reject('alice', warm.packetId, 'bob')).toBe('ok')
    const r = reservation()
    // Writes wait in Redis longer than the client waits: the prepare times out, then runs.
    await client.call('CLIENT', 'PAUSE', '500', 'WRITE')
    await expect(ledger.prepare(r)).rejects.toThrow(/timed out/i)
    expect(ledger.own.suspects.size).toBe(1)
    await until('the paused prepare to run', async () => (await observer.hotSet()).length === 1)
    expect((await balances(observer)).alice).toBe('-100')
    // The sweeper would leave it (its owner is alive); the owner refunds it.
    expect(await resolveOrphans(ledger)).toEqual({ examined: 1, refunded: 1, credited: 0 })
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
