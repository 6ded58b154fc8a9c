import { Redis } from 'ioredis'
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import { Ledger, type LedgerOptions, type Reservation } from '../../src/store/ledger.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** The Lua scripts through their typed bindings, against a real Redis. */
let redis: TestRedis
let client: Redis
let ledger: Ledger
let prefix = ''
let seq = 0

beforeAll(async () => {
  redis = await startTestRedis()
  client = new Redis(redis.url)
})
afterAll(async () => {
  client?.disconnect()
  await redis?.close()
})
let mode: LedgerOptions = {}
beforeEach(() => {
  prefix = `l${++seq}:`
  ledger = new Ledger(client, prefix, mode)
})
/** Split, with an outgoing record for every packet (as under durability replica). */
const RECORDS: LedgerOptions = { split: true, owesCredits: false }

function reservation(fields: Partial<Reservation> = {}): Reservation {
  return {
    incomingAccount: 'alice',
    packetId: `p${Math.random()}`,
    shard: 0,
    inAmount: '100',
    outgoingAccount: 'bob',
    outAmount: '100',
    expiresAtMs: Date.now() + 30_000,
    minBalance: '-1000',
    maxBalance: undefined,
    ...fields,
  }
}

async function snapshot(): Promise<Record<string, Record<string, string>>> {
  const keys = await client.keys(`${prefix}*`)
  const out: Record<string, Record<string, string>> = {}
  for (const key of keys.sort()) {
    const type = await client.type(key)
    out[key] =
      type === 'hash'
        ? await client.hgetall(key)
        : type === 'set'
          ? { set: (await client.smembers(key)).sort().join(',') }
          : { zset: (await client.zrange(key, 0, -1, 'WITHSCORES')).join(',') }
  }
  return out
}

// Each step as one chained call (a single Redis), and as one call per account (as on a cluster), there
// with an outgoing record for every packet, or with a fulfill that owes the credit for a transfer to move.
describe.each([
  ['chained', { split: false }],
  ['split, an outgoing record per packet', RECORDS],
  ['split, credits owed', { split: true }],
] as Array<[string, LedgerOptions]>)('Ledger (Lua scripts), %s', (_mode, options) => {
  const splitMode = options.split === true
  const owes = splitMode && options.owesCredits !== false
  beforeAll(() => {
    mode = options
  })

  it('loads its scripts as one Redis Functions library, and loads them again if Redis lost them', async () => {
    await ledger.load()
    const libs = (await client.call('FUNCTION', 'LIST')) as unknown[][]
    expect(JSON.stringify(libs)).toContain('_batch')
    await client.call('FUNCTION', 'FLUSH')
    const r = reservation()
    expect(await ledger.prepare(r)).toBe('ok')
    expect(await ledger.fulfill('alice', r.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('bob')).balance).toBe('100')
  })

  it('prepare debits the sender and records the hotSet entry; fulfill credits the next hop and drops it', async () => {
    const r = reservation()
    expect(await ledger.prepare(r)).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-100')
    expect((await ledger.balance('bob')).balance).toBe('0')
    const [entry] = await ledger.hotSet()
    expect(entry).toMatchObject({ incomingAccount: 'alice', packetId: r.packetId, shard: 0, inAmount: '100', outgoingAccount: 'bob' })
    expect(entry!.expiresAtMs).toBe(r.expiresAtMs)

    expect(await ledger.fulfill('alice', r.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-100')
    expect((await ledger.balance('bob')).balance).toBe('100')
    expect(await ledger.hotSet()).toEqual([])
    // settled once: a second fulfill or a late reject changes nothing
    expect(await ledger.fulfill('alice', r.packetId, 'bob')).toBe('gone')
    expect(await ledger.reject('alice', r.packetId, 'bob')).toBe('gone')
    expect((await ledger.balance('bob')).balance).toBe('100')
    expect((await ledger.balance('alice')).balance).toBe('-100')
  })

  it('creditLater: the fulfill answers once decided; split, the credit lands after it (held, then flushed), chained, with it', async () => {
    const r = reservation()
    expect(await ledger.prepare(r)).toBe('ok')
    expect(await ledger.fulfill('alice', r.packetId, 'bob', { creditLater: true })).toBe('ok')
    // decided, and split not yet credited (the credit is sent with the next batch): its outgoing record holds it
    expect(ledger.owedCreditCount).toBe(splitMode ? 1 : 0)
    if (splitMode) {
      // and the ledger keeps its accounts in its owner index until it lands
      await ledger.pruneIndex(0)
      // (a credit owed waits in the incoming slot: the sweeper needs only that account)
      expect((await client.smembers(ledger.keys.ownerAccounts(ledger.bootId))).sort()).toEqual(owes ? ['alice'] : ['alice', 'bob'])
      await ledger.flushCredits()
    }
    expect(ledger.owedCreditCount).toBe(0)
    expect(await ledger.hotSet()).toEqual([])
    expect((await ledger.balance('bob')).balance).toBe('100')
    expect((await ledger.balance('alice')).balance).toBe('-100')
    expect(await ledger.pendingCredits()).toEqual([])
    // once: the record is gone, a second fulfill finds nothing to credit
    expect(await ledger.fulfill('alice', r.packetId, 'bob', { creditLater: true })).toBe('gone')
    await ledger.flushCredits()
    expect((await ledger.balance('bob')).balance).toBe('100')
  })

  it('reject refunds the sender exactly and drops the entry', async () => {
    const r = reservation({ inAmount: '250', outAmount: '250' })
    await ledger.prepare(r)
    expect(await ledger.reject('alice', r.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('0')
    expect((await ledger.balance('bob')).balance).toBe('0')
    expect(await ledger.hotSet()).toEqual([])
  })

  it('writes the outgoing record where it is needed: for a next hop with a maxBalance, or for every packet split without owed credits; fulfill credits the outgoing amount either way', async () => {
    const plain = reservation({ inAmount: '100', outAmount: '93' })
    const capped = reservation({ inAmount: '100', outAmount: '91', maxBalance: '1000' })
    expect(await ledger.prepare(plain)).toBe('ok')
    expect(await ledger.prepare(capped)).toBe('ok')
    const credits = (await ledger.pendingCredits()).map((c) => c.packetId).sort()
    expect(credits).toEqual(splitMode && !owes ? [plain.packetId, capped.packetId].sort() : [capped.packetId])
    expect((await ledger.hotSet()).map((e) => e.packetId).sort()).toEqual([plain.packetId, capped.packetId].sort())
    const hgets = async () => Number(/cmdstat_hget:calls=(\d+)/.exec(await client.info('commandstats'))?.[1] ?? 0)
    const before = await hgets()
    expect(await ledger.fulfill('alice', plain.packetId, 'bob')).toBe('ok')
    // the incoming record is read; chained, the outgoing one that this reservation never wrote is not looked
    // for; owed, the fulfill begins the pair's transfer (what is owed, the last number), the transfer reads
    // the next hop's last applied number, and its end the transfer in progress
    expect((await hgets()) - before).toBe(owes ? 5 : splitMode ? 2 : 1)
    expect(await ledger.owedBy('alice')).toEqual([])
    expect((await ledger.balance('bob')).balance).toBe('93')
    expect(await ledger.fulfill('alice', capped.packetId, 'bob')).toBe('ok')
    expect(await ledger.balance('bob')).toMatchObject({ balance: '184', creditsInFlight: '0' })
    expect((await ledger.balance('alice')).balance).toBe('-200')
    expect(await ledger.pendingCredits()).toEqual([])
    expect(await ledger.hotSet()).toEqual([])
    // settled once, with or without the record
    expect(await ledger.fulfill('alice', plain.packetId, 'bob')).toBe('gone')
    expect((await ledger.balance('bob')).balance).toBe('184')
  })

  it('batches the calls of one event-loop turn into one FCALL; each packet gets its own result, errors included', async () => {
    await client.config('RESETSTAT')
    const packets = Array.from({ length: 20 }, () => reservation({ inAmount: '10', outAmount: '10' }))
    const outcomes = await Promise.all(packets.map((p) => ledger.prepare(p)))
    expect(outcomes).toEqual(packets.map(() => 'ok'))
    const calls = Number(/cmdstat_fcall:calls=(\d+)/.exec(await client.info('commandstats'))?.[1])
    expect(calls).toBeLessThan(20)
    // one packet named with the wrong next hop: its own error, the others settle
    const results = await Promise.allSettled([
      ledger.fulfill('alice', packets[0]!.packetId, 'mallory'),
      ...packets.slice(1).map((p) => ledger.fulfill('alice', p.packetId, 'bob')),
    ])
    expect(results[0]!.status).toBe('rejected')
    expect(String((results[0] as PromiseRejectedResult).reason)).toContain('goes to bob')
    expect(results.slice(1).every((r) => r.status === 'fulfilled' && r.value === 'ok')).toBe(true)
    expect((await ledger.balance('bob')).balance).toBe('190')
    expect(await ledger.reject('alice', packets[0]!.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-190')
  })

  it('refuses a duplicate packet id while it is in flight and debits once', async () => {
    const r = reservation()
    expect(await ledger.prepare(r)).toBe('ok')
    expect(await ledger.prepare(r)).toBe('duplicate')
    expect((await ledger.balance('alice')).balance).toBe('-100')
    // the same id from another account is a different packet
    expect(await ledger.prepare({ ...r, incomingAccount: 'carol' })).toBe('ok')
  })

  it('refuses below minBalance, and a refused prepare changes nothing', async () => {
    expect(await ledger.prepare(reservation({ inAmount: '600', outAmount: '600' }))).toBe('ok')
    const before = await snapshot()
    expect(await ledger.prepare(reservation({ inAmount: '401', outAmount: '401' }))).toBe('insufficient-balance')
    expect(await snapshot()).toEqual(before)
    expect(await ledger.prepare(reservation({ inAmount: '400', outAmount: '400' }))).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-1000')
    expect(await ledger.prepare(reservation({ inAmount: '1', outAmount: '1' }))).toBe('insufficient-balance')
  })

  it('no minBalance means no lower limit', async () => {
    expect(await ledger.prepare(reservation({ inAmount: '5000', minBalance: undefined }))).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-5000')
  })

  it('reserves headroom against maxBalance for packets in flight, releases it on reject', async () => {
    const cap = { maxBalance: '150' }
    const a = reservation({ ...cap })
    expect(await ledger.prepare(a)).toBe('ok')
    expect((await ledger.balance('bob')).creditsInFlight).toBe('100')
    const before = await snapshot()
    const balances = [await ledger.balance('alice'), await ledger.balance('bob')]
    expect(await ledger.prepare(reservation({ ...cap, outAmount: '51' }))).toBe('exceeds-max-balance')
    if (!splitMode) expect(await snapshot()).toEqual(before)
    // Split, the refused outgoing side comes after the incoming reservation, which is refunded:
    // the balances are as they were, though the lease may have moved from cold to the shard's hot balance.
    else expect([await ledger.balance('alice'), await ledger.balance('bob')].map((b) => [b.balance, b.creditsInFlight])).toEqual(balances.map((b) => [b.balance, b.creditsInFlight]))
    expect(await ledger.prepare(reservation({ ...cap, inAmount: '50', outAmount: '50' }))).toBe('ok')
    await ledger.reject('alice', a.packetId, 'bob')
    expect((await ledger.balance('bob')).creditsInFlight).toBe('50')
    expect(await ledger.prepare(reservation({ ...cap, outAmount: '100' }))).toBe('ok')
    expect((await ledger.balance('bob')).creditsInFlight).toBe('150')
  })

  it('a fulfill can never push the next hop over maxBalance', async () => {
    const cap = { maxBalance: '100', minBalance: '-100000' }
    const packets = Array.from({ length: 5 }, () => reservation({ ...cap, inAmount: '30', outAmount: '30' }))
    const outcomes = await Promise.all(packets.map((p) => ledger.prepare(p)))
    expect(outcomes.filter((o) => o === 'ok')).toHaveLength(3)
    for (const [i, p] of packets.entries()) if (outcomes[i] === 'ok') await ledger.fulfill('alice', p.packetId, 'bob')
    expect((await ledger.balance('bob')).balance).toBe('90')
    expect((await ledger.balance('bob')).creditsInFlight).toBe('0')
  })

  it('keeps UInt64 amounts and balances beyond 2^64 exact', async () => {
    const max = '18446744073709551615'
    const huge = { inAmount: max, outAmount: max, minBalance: '-100000000000000000000000' }
    const a = reservation(huge)
    const b = reservation(huge)
    expect(await ledger.prepare(a)).toBe('ok')
    expect(await ledger.prepare(b)).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-36893488147419103230')
    await ledger.fulfill('alice', a.packetId, 'bob')
    await ledger.reject('alice', b.packetId, 'bob')
    expect((await ledger.balance('alice')).balance).toBe(`-${max}`)
    expect((await ledger.balance('bob')).balance).toBe(max)
    const c = reservation({ inAmount: '9007199254740993', outAmount: '9007199254740993', minBalance: '-100000000000000000000000' })
    await ledger.prepare(c)
    await ledger.fulfill('alice', c.packetId, 'bob')
    expect((await ledger.balance('bob')).balance).toBe((BigInt(max) + 9007199254740993n).toString())
  })

  it('adds exactly where HINCRBY cannot: a result beyond 2^63, a field beyond it, negative ones too', async () => {
    const nearMax = '9223372036854775000' // 2^63 - 808
    await client.hset(ledger.keys.account('bob'), 'cold', nearMax)
    const a = reservation({ inAmount: '1000', outAmount: '1000', minBalance: '-100000000000000000000000' })
    expect(await ledger.prepare(a)).toBe('ok')
    expect(await ledger.fulfill('alice', a.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('bob')).cold).toBe('9223372036854776000') // past 2^63: the decimal path
    const b = reservation({ inAmount: '7', outAmount: '7', minBalance: '-100000000000000000000000' })
    expect(await ledger.prepare(b)).toBe('ok')
    expect(await ledger.fulfill('alice', b.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('bob')).cold).toBe('9223372036854776007') // the field itself beyond 2^63
    // a refund onto a hot balance beyond 2^63 (a field HINCRBY cannot read)
    await client.hset(ledger.keys.account('carol'), 'hot:0', '20000000000000000000')
    const c = reservation({ incomingAccount: 'carol', inAmount: '5', outAmount: '5' })
    expect(await ledger.prepare(c)).toBe('ok')
    expect((await ledger.balance('carol')).hot['0']).toBe('19999999999999999995')
    expect(await ledger.reject('carol', c.packetId, 'bob')).toBe('ok')
    expect((await ledger.balance('carol')).hot['0']).toBe('20000000000000000000')
    // and below -2^63: a credit onto a cold balance that far in debt
    await client.hset(ledger.keys.account('dave'), 'cold', '-20000000000000000000')
    const d = reservation({ outgoingAccount: 'dave', inAmount: '3', outAmount: '3', minBalance: '-100000000000000000000000' })
    expect(await ledger.prepare(d)).toBe('ok')
    expect(await ledger.fulfill('alice', d.packetId, 'dave')).toBe('ok')
    expect((await ledger.balance('dave')).cold).toBe('-19999999999999999997')
  })

  it('leases up to (P - 1) x amount into the shard when it draws on cold, never below minBalance', async () => {
    // P = 3: the first prepare of 100 takes 100 from cold and leases 200 more into hot:0
    expect(await ledger.prepare(reservation({ parallelism: 3 }))).toBe('ok')
    expect(await ledger.balance('alice')).toMatchObject({ balance: '-100', cold: '-300', hot: { '0': '200' } })
    // the next two on shard 0 need no cold
    await ledger.prepare(reservation({ parallelism: 3 }))
    await ledger.prepare(reservation({ parallelism: 3 }))
    expect(await ledger.balance('alice')).toMatchObject({ balance: '-300', cold: '-300', hot: { '0': '0' } })
    // near the limit the lease shrinks to what is spare: 700 left, 600 drawn, lease 100 (not 1200)
    await ledger.prepare(reservation({ parallelism: 3, inAmount: '600', outAmount: '600' }))
    expect(await ledger.balance('alice')).toMatchObject({ balance: '-900', cold: '-1000', hot: { '0': '100' } })
    // another shard can still use the leased 100: the check is on the whole account
    expect(await ledger.prepare(reservation({ shard: 1, parallelism: 3, inAmount: '101', outAmount: '101' }))).toBe('insufficient-balance')
    expect(await ledger.prepare(reservation({ shard: 1, parallelism: 3, inAmount: '100', outAmount: '100' }))).toBe('ok')
    expect((await ledger.balance('alice')).balance).toBe('-1000')
  })

  it('keeps a cold balance and one hot balance per shard: refunds stay hot, idle hot balance is reclaimed before refusing', async () => {
    // shard 0 reserves 600 of alice's 1000 credit, then the packet is rejected: the 600 is refunded to hot:0
    const first = reservation({ inAmount: '600', outAmount: '600' })
    await ledger.prepare(first)
    await ledger.reject('alice', first.packetId, 'bob')
    let b = await ledger.balance('alice')
    expect(b).toMatchObject({ balance: '0', cold: '-600', hot: { '0': '600' } })
    // shard 0 spends its hot balance first
    const second = reservation({ inAmount: '100', outAmount: '100' })
    await ledger.prepare(second)
    b = await ledger.balance('alice')
    expect(b).toMatchObject({ balance: '-100', cold: '-600', hot: { '0': '500' } })
    // shard 1 needs 900: cold has 400 spare above minBalance, so it takes back shard 0's idle 500 first
    expect(await ledger.prepare(reservation({ shard: 1, inAmount: '901', outAmount: '901' }))).toBe('insufficient-balance')
    expect(await ledger.prepare(reservation({ shard: 1, inAmount: '900', outAmount: '900' }))).toBe('ok')
    b = await ledger.balance('alice')
    expect(b).toMatchObject({ balance: '-1000', cold: '-1000', hot: { '0': '0', '1': '0' } })
  })

  it('keeps its owner index to the accounts it used lately or holds packets on', async () => {
    const indexKey = ledger.keys.ownerAccounts(ledger.bootId)
    const held = reservation({ incomingAccount: 'carol', outgoingAccount: 'dave' })
    expect(await ledger.prepare(held)).toBe('ok')
    const done = reservation()
    expect(await ledger.prepare(done)).toBe('ok')
    expect(await ledger.fulfill('alice', done.packetId, 'bob')).toBe('ok')
    expect((await client.smembers(indexKey)).sort()).toEqual(['alice', 'bob', 'carol', 'dave'])
    expect(await ledger.pruneIndex(60_000)).toBe(0) // all used just now
    expect(await ledger.pruneIndex(0)).toBe(2) // idle, and nothing in flight on them
    expect((await client.smembers(indexKey)).sort()).toEqual(['carol', 'dave'])
    // a packet on a pruned account indexes it again before its records are written
    const again = reservation()
    expect(await ledger.prepare(again)).toBe('ok')
    expect((await client.smembers(indexKey)).sort()).toEqual(['alice', 'bob', 'carol', 'dave'])
    expect(await ledger.reject('alice', again.packetId, 'bob')).toBe('ok')
    expect(await ledger.reject('carol', held.packetId, 'dave')).toBe('ok')
    // a bound on how many it keeps: the least recently used go first
    expect(await ledger.pruneIndex(60_000, 1)).toBe(3)
    expect(await client.scard(indexKey)).toBe(1)
  })

  it('holds the sending limits farm-wide in the reservation: in flight, packets and amount per second; only granted packets count', async () => {
    // a fresh second of Redis' clock, so the per-second windows below are one
    const [, usec] = (await client.call('TIME')) as [string, string]
    if (Number(usec) > 700_000) await new Promise((r) => setTimeout(r, 1_000 - Number(usec) / 1_000 + 20))
    const limits = { maxInFlight: 2 }
    const a = reservation({ limits })
    const b = reservation({ limits })
    expect(await ledger.prepare(a)).toBe('ok')
    expect(await ledger.prepare(b)).toBe('ok')
    const before = await snapshot()
    expect(await ledger.prepare(reservation({ limits }))).toBe('too-many-in-flight')
    expect(await snapshot()).toEqual(before)
    expect(await ledger.fulfill('alice', a.packetId, 'bob')).toBe('ok')
    expect(await ledger.prepare(reservation({ limits }))).toBe('ok')

    const perSecond = { maxPacketsPerSecond: 3 }
    const carol = (fields: Partial<Reservation> = {}) => reservation({ incomingAccount: 'carol', limits: perSecond, ...fields })
    expect(await ledger.prepare(carol({ minBalance: '0' }))).toBe('insufficient-balance') // refused: not counted
    for (let i = 0; i < 3; i++) expect(await ledger.prepare(carol())).toBe('ok')
    expect(await ledger.prepare(carol())).toBe('rate-limited')
    expect(await ledger.prepare(reservation({ incomingAccount: 'dave', limits: perSecond }))).toBe('ok') // per account

    const amount = { maxAmountPerSecond: '250' }
    const erin = (inAmount: string) => reservation({ incomingAccount: 'erin', inAmount, outAmount: inAmount, limits: amount })
    expect(await ledger.prepare(erin('100'))).toBe('ok')
    expect(await ledger.prepare(erin('100'))).toBe('ok')
    expect(await ledger.prepare(erin('51'))).toBe('throughput-exceeded')
    expect(await ledger.prepare(erin('50'))).toBe('ok')
    // the next second starts afresh
    await new Promise((r) => setTimeout(r, 1_000))
    expect(await ledger.prepare(carol())).toBe('ok')
    expect(await ledger.prepare(erin('250'))).toBe('ok')
  })
})

// Split only: on one Redis a packet's records are settled in one call, so no record waits for its credit.
describe('Ledger (Lua scripts), split: a credit owed', () => {
  beforeAll(() => {
    mode = RECORDS
  })

  it('refuses the id again while its credit is still owed (the outgoing record waits), with or without a maxBalance; the refused prepare is undone', async () => {
    const other = new Ledger(client, prefix, mode)
    for (const maxBalance of [undefined, '1000000']) {
      const r = reservation({ maxBalance })
      const alice = BigInt((await ledger.balance('alice')).balance)
      const bob = BigInt((await ledger.balance('bob')).balance)
      expect(await ledger.prepare(r)).toBe('ok')
      // decided, its credit owed: the incoming record gone (as a fulfill-incoming leaves it), the outgoing one waiting
      expect(await client.hdel(ledger.keys.packetKeys('alice').inflight, r.packetId)).toBe(1)
      const [owed] = await ledger.pendingCredits()
      expect(owed?.packetId).toBe(r.packetId)
      const records = await client.hgetall(ledger.keys.packetKeys('bob').credits)
      // another worker takes the same packet id: refused at the next hop's side, its incoming reservation undone
      expect(await other.prepare(r)).toBe('duplicate')
      expect(BigInt((await ledger.balance('alice')).balance)).toBe(alice - 100n)
      expect(await ledger.hotSet()).toEqual([])
      expect(await client.hgetall(ledger.keys.packetKeys('bob').credits)).toEqual(records)
      // the owed credit lands once
      expect(await ledger.creditRecord(owed!)).toBe('ok')
      expect(await ledger.creditRecord(owed!)).toBe('gone')
      expect(BigInt((await ledger.balance('bob')).balance)).toBe(bob + 100n)
      expect(await ledger.pendingCredits()).toEqual([])
    }
  })
})

describe("Ledger (Lua scripts), split: Redis' clock", () => {
  beforeAll(() => {
    mode = RECORDS
  })

  it('fences a batch against one reading of the clock: TIME once per call, and a packet past its expiry in the batch is still refused, the rest granted', async () => {
    // each batch's prepares are granted on the incoming side first, then written at the next hop's in a second batch
    const late = reservation({ expiresAtMs: Date.now() - 1 })
    const packets = Array.from({ length: 20 }, () => reservation({ inAmount: '10', outAmount: '10' }))
    await ledger.load()
    await client.config('RESETSTAT')
    const outcomes = await Promise.all([late, ...packets].map((p) => ledger.prepare(p)))
    expect(outcomes).toEqual(['expired', ...packets.map(() => 'ok')])
    const stats = await client.info('commandstats')
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
    // 21 outgoing records fenced (the undo of the late one fences nothing): the clock read once per FCALL
    expect(calls('fcall')).toBeLessThan(21)
    expect(calls('time')).toBeGreaterThan(0)
    expect(calls('time')).toBeLessThanOrEqual(calls('fcall'))
    // the late one changed nothing; the others debited the sender once each
    expect((await ledger.balance('alice')).balance).toBe('-200')
    expect((await ledger.hotSet()).map((e) => e.packetId).sort()).toEqual(packets.map((p) => p.packetId).sort())
    expect((await ledger.pendingCredits()).length).toBe(20)
    // each call reads the clock afresh: a packet that expires between two calls is refused by the second
    const soon = reservation({ expiresAtMs: Date.now() + 50 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await ledger.prepare(soon)).toBe('expired')
  })

  it("counts a sending-rate window by the same reading: a batch of prepares with limits reads Redis' clock once", async () => {
    const limits = { maxPacketsPerSecond: 1000, maxAmountPerSecond: '100000' }
    const packets = Array.from({ length: 20 }, () => reservation({ inAmount: '10', outAmount: '10', limits }))
    await ledger.load()
    await client.config('RESETSTAT')
    expect(await Promise.all(packets.map((p) => ledger.prepare(p)))).toEqual(packets.map(() => 'ok'))
    const stats = await client.info('commandstats')
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
    // the incoming calls (their windows) and the outgoing ones (their fences): one reading each
    expect(calls('time')).toBeLessThanOrEqual(calls('fcall'))
    // one window for the batch, counting every packet (a second's boundary may split them in two)
    expect(await client.hget(ledger.keys.packetKeys('alice').rate, 'n')).toMatch(/^([1-9]|1\d|20)$/)
  })
})

describe('Ledger (Lua scripts), split: batches', () => {
  beforeAll(() => {
    mode = RECORDS
  })

  it('collects its calls over two turns of the event loop: two packets begun a turn apart share each FCALL', async () => {
    // the first packet adds the accounts to the owner index: the two below need no more than their FCALLs
    expect(await ledger.prepare(reservation())).toBe('ok')
    await client.config('RESETSTAT')
    const first = ledger.prepare(reservation())
    await new Promise<void>((resolve) => setImmediate(resolve))
    const second = ledger.prepare(reservation())
    expect(await Promise.all([first, second])).toEqual(['ok', 'ok'])
    // one FCALL for both incoming records, one for both outgoing ones
    expect(Number(/cmdstat_fcall:calls=(\d+)/.exec(await client.info('commandstats'))?.[1])).toBe(2)
    expect((await ledger.hotSet()).length).toBe(3)
  })
})

// Split, without an outgoing record: a fulfill owes the credit in the incoming slot; transfers move it.
describe('Ledger (Lua scripts), split: credits owed, moved by transfers', () => {
  beforeAll(() => {
    mode = { split: true }
  })
  const owedHash = () => client.hgetall(ledger.keys.packetKeys('alice').owed)

  it('a prepare is one call and a fulfill owes the credit in the same step; the transfer moves it, batched with the next packets', async () => {
    expect(await ledger.prepare(reservation())).toBe('ok') // the owner index, once
    await client.config('RESETSTAT')
    const packets = Array.from({ length: 20 }, () => reservation({ inAmount: '10', outAmount: '9' }))
    expect(await Promise.all(packets.map((p) => ledger.prepare(p)))).toEqual(packets.map(() => 'ok'))
    // the incoming records only, in one FCALL: no outgoing record
    expect(Number(/cmdstat_fcall:calls=(\d+)/.exec(await client.info('commandstats'))?.[1])).toBe(1)
    expect(await ledger.pendingCredits()).toEqual([])
    expect(await Promise.all(packets.map((p) => ledger.fulfill('alice', p.packetId, 'bob', { creditLater: true })))).toEqual(packets.map(() => 'ok'))
    await ledger.flushCredits()
    expect(ledger.owedCreditCount).toBe(0)
    expect((await ledger.balance('bob')).balance).toBe('180')
    expect((await ledger.balance('alice')).balance).toBe('-300')
    // nothing owed or in transfer; the pair's last number stays
    expect(Object.keys(await owedHash())).toEqual(['n:bob'])
    const received = await client.hget(ledger.keys.packetKeys('bob').received, 'alice')
    expect(received).toBe((await owedHash())['n:bob'])
  })

  it('a transfer that was applied but not ended, or begun but not applied, is finished by anyone, once', async () => {
    const owed = ledger.keys.packetKeys('alice').owed
    const received = ledger.keys.packetKeys('bob').received
    // applied, not ended (its owner died between the two): ended without a second credit
    await client.hset(owed, 'n:bob', '1000', 't:bob', '1000|70')
    await client.hset(received, 'alice', '1000')
    await client.hset(ledger.keys.account('bob'), 'cold', '70')
    const sweeper = new Ledger(client, prefix, mode)
    expect(await sweeper.owedBy('alice')).toEqual(['bob'])
    expect(await sweeper.transferAllOwed('alice')).toBe(1)
    expect((await ledger.balance('bob')).balance).toBe('70')
    expect(await sweeper.owedBy('alice')).toEqual([])
    // begun, not applied, with more owed since: both land, once each
    await client.hset(owed, 'n:bob', '2000', 't:bob', '2000|5', 'o:bob', '8')
    await Promise.all([sweeper.transferAllOwed('alice'), ledger.transferAllOwed('alice'), ledger.transferOwed('alice', 'bob')])
    expect((await ledger.balance('bob')).balance).toBe('83')
    expect(await sweeper.owedBy('alice')).toEqual([])
    // a late copy of an applied transfer's credit changes nothing
    const last = (await client.hget(received, 'alice'))!
    expect(Number(last)).toBeGreaterThan(2000)
    await client.hset(owed, 't:bob', '2000|5')
    await ledger.transferAllOwed('alice')
    expect((await ledger.balance('bob')).balance).toBe('83')
    expect(await client.hget(received, 'alice')).toBe(last)
  })

  it('two processes fulfilling packets of one pair at once: every credit lands, once', async () => {
    const other = new Ledger(client, prefix, mode)
    const packets = Array.from({ length: 200 }, (_, i) => ({ r: reservation({ inAmount: '3', outAmount: String(1 + (i % 7)), minBalance: undefined }), by: i % 2 === 0 ? ledger : other }))
    expect(await Promise.all(packets.map(({ r, by }) => by.prepare(r)))).toEqual(packets.map(() => 'ok'))
    const outcomes = await Promise.all(packets.map(({ r, by }) => by.fulfill('alice', r.packetId, 'bob', { creditLater: true })))
    expect(outcomes).toEqual(packets.map(() => 'ok'))
    await Promise.all([ledger.flushCredits(), other.flushCredits()])
    const total = packets.reduce((a, { r }) => a + BigInt(r.outAmount), 0n)
    expect((await ledger.balance('bob')).balance).toBe(String(total))
    expect((await ledger.balance('alice')).balance).toBe(String(-3n * 200n))
    expect(await ledger.owedBy('alice')).toEqual([])
  })

  it('a fulfill after the expiry is refused and refunded; a reject refunds; neither owes anything', async () => {
    const late = reservation({ expiresAtMs: Date.now() + 60 })
    const failed = reservation()
    expect(await ledger.prepare(late)).toBe('ok')
    expect(await ledger.prepare(failed)).toBe('ok')
    await new Promise((resolve) => setTimeout(resolve, 100))
    expect(await ledger.fulfill('alice', late.packetId, 'bob')).toBe('gone')
    expect(await ledger.reject('alice', failed.packetId, 'bob')).toBe('ok')
    await ledger.flushCredits()
    expect((await ledger.balance('alice')).balance).toBe('0')
    expect((await ledger.balance('bob')).balance).toBe('0')
    expect(await ledger.owedBy('alice')).toEqual([])
    expect(await ledger.hotSet()).toEqual([])
  })
})
