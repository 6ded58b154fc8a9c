import { serializeIlpFulfill, serializeIlpPrepare, serializeIlpReject } from 'ilp-packet'
import type { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseAccount } from '../../src/config/load.js'
import type { AccountConfig } from '../../src/config/schema.js'
import { FarmMetrics } from '../../src/metrics/farm-metrics.js'
import { connectRedis } from '../../src/store/redis.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { Keys } from '../../src/store/keys.js'

/**
 * The flush into Redis is exactly once: a flush whose EXEC timed out (it may
 * or may not have run) is neither lost nor counted twice, whichever it was.
 * Accounts without series of their own count under (other) and are noted in
 * the bounded recently-active set.
 */
let redis: TestRedis
let conn: Redis

const prepare = serializeIlpPrepare({
  destination: 'test.x',
  amount: '18446744073709551615', // UInt64 max: counted as the nearest double
  executionCondition: Buffer.alloc(32),
  expiresAt: new Date(Date.now() + 10_000),
  data: Buffer.alloc(0),
})
const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
const reject = (code: string) => serializeIlpReject({ code, triggeredBy: 'test.x', message: '', data: Buffer.alloc(0) })

beforeAll(async () => {
  redis = await startTestRedis()
  // a short command timeout, so that a paused Redis makes the flush's outcome unknown
  conn = await connectRedis(redis.url, { commandTimeoutMs: 150 })
})

afterAll(async () => {
  conn?.disconnect()
  await redis?.close()
})

function start(keyPrefix: string, flushIntervalMs = 3_600_000): FarmMetrics {
  return FarmMetrics.start({ redis: conn, keyPrefix, bootId: `0-${keyPrefix}`, log: pino({ level: 'silent' }), flushIntervalMs })
}

/** An account as the packet path has it: a child unless `fields` say otherwise. */
function accountConfig(id: string, fields: Record<string, unknown> = {}): AccountConfig {
  const parsed = parseAccount({ id, relation: 'child', assetCode: 'USD', assetScale: 6, ...fields })
  if ('problems' in parsed) throw new Error(parsed.problems.join('; '))
  return parsed.account
}

/** Opted in: its packets have series of their own. */
const alice = accountConfig('alice', { metrics: true })

function count(m: FarmMetrics, n: number, reply: Buffer, from: AccountConfig = alice): void {
  for (let i = 0; i < n; i++) m.packetDone(from, prepare, reply, performance.now())
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('FarmMetrics flush', () => {
  it('adds the counts once, with code labels from the reply bytes (unknown codes: other)', async () => {
    const m = start('once:')
    count(m, 3, fulfill)
    count(m, 2, reject('T04'))
    count(m, 1, reject('X42'))
    await m.flush()
    await m.flush() // nothing new: nothing added
    const hash = await redis.client.hgetall(new Keys('once:').metrics)
    expect(hash['packets|alice|fulfilled']).toBe('3')
    expect(hash['packets|alice|rejected|T04']).toBe('2')
    expect(hash['packets|alice|rejected|other']).toBe('1')
    expect(Number(hash['amount|alice|fulfilled'])).toBe(3 * 2 ** 64)
    expect(Number(hash['packet_seconds|fulfilled|0.001'])).toBe(3)
    await m.close()
  })

  it('a flush that timed out but ran in Redis is not sent again', async () => {
    const m = start('ran:')
    count(m, 10, fulfill)
    // writes wait 500 ms: the EXEC times out at 150 ms, then runs when the pause ends
    await redis.client.call('CLIENT', 'PAUSE', '500', 'WRITE')
    await expect(m.flush()).rejects.toThrow(/timed? ?out/i)
    await new Promise((r) => setTimeout(r, 600))
    expect(await redis.client.hget(new Keys('ran:').metrics, 'packets|alice|fulfilled')).toBe('10')
    count(m, 5, fulfill)
    await m.flush()
    expect(await redis.client.hget(new Keys('ran:').metrics, 'packets|alice|fulfilled')).toBe('15')
    await m.close()
  })

  it('a flush that timed out and never ran (its connection died first) is sent again', async () => {
    const m = start('lost:')
    count(m, 10, fulfill)
    const id = String(await conn.client('ID'))
    await redis.client.call('CLIENT', 'PAUSE', '500', 'WRITE')
    await expect(m.flush()).rejects.toThrow(/timed? ?out/i)
    // the waiting EXEC goes with its connection; ioredis reconnects
    await redis.client.call('CLIENT', 'KILL', 'ID', id)
    await new Promise((r) => setTimeout(r, 700))
    expect(await redis.client.hget(new Keys('lost:').metrics, 'packets|alice|fulfilled')).toBeNull()
    await m.flush()
    expect(await redis.client.hget(new Keys('lost:').metrics, 'packets|alice|fulfilled')).toBe('10')
    await m.close()
  })

  it('a flush refused before it ran is sent again with the next', async () => {
    const m = start('retry:')
    count(m, 4, reject('F02'))
    // over maxmemory Redis refuses to queue the writes: EXECABORT, a reply error, so certainly not applied
    await redis.client.call('CONFIG', 'SET', 'maxmemory', '1')
    await expect(m.flush()).rejects.toThrow()
    await redis.client.call('CONFIG', 'SET', 'maxmemory', '0')
    count(m, 1, reject('F02'))
    await m.flush()
    expect(await redis.client.hget(new Keys('retry:').metrics, 'packets|alice|rejected|F02')).toBe('5')
    await m.close()
  })

  it('counts accounts without series of their own under (other), and notes them as recently active', async () => {
    const m = start('other:')
    const carol = accountConfig('carol')
    const dave = accountConfig('dave')
    const peer = accountConfig('bigpeer', { relation: 'peer' })
    const carrier = accountConfig('carrier', { routes: ['test.carrier'], outgoing: { url: 'http://127.0.0.1:1/ilp' } })
    const before = Date.now()
    count(m, 3, fulfill, carol)
    count(m, 2, reject('T04'), dave)
    count(m, 1, fulfill)
    count(m, 1, fulfill, peer)
    count(m, 1, reject('F02'), carrier)
    await m.flush()
    const hash = await redis.client.hgetall(new Keys('other:').metrics)
    expect(hash['packets|(other)|fulfilled']).toBe('3')
    expect(hash['packets|(other)|rejected|T04']).toBe('2')
    expect(Number(hash['amount|(other)|fulfilled'])).toBe(3 * 2 ** 64)
    expect(hash['packets|alice|fulfilled']).toBe('1')
    expect(hash['packets|bigpeer|fulfilled']).toBe('1')
    expect(hash['packets|carrier|rejected|F02']).toBe('1')
    expect(Object.keys(hash).filter((f) => /carol|dave/.test(f))).toEqual([])
    // every packet is in the latency histogram, whatever its label
    expect(Number(hash['packet_seconds|fulfilled|0.001'])).toBe(5)
    expect(Number(hash['packet_seconds|rejected|0.001'])).toBe(3)
    // only the accounts without series of their own are noted (the others are always on the dashboard)
    const active = await redis.client.zrange(new Keys('other:').activeAccounts, 0, -1, 'WITHSCORES')
    expect(active.filter((_, i) => i % 2 === 0).sort()).toEqual(['carol', 'dave'])
    for (const score of active.filter((_, i) => i % 2 === 1)) {
      expect(Number(score)).toBeGreaterThanOrEqual(before)
      expect(Number(score)).toBeLessThanOrEqual(Date.now())
    }
    await m.close()
  })

  it('keeps the recently-active set bounded: 200 a second per worker, the newest 1,000 farm-wide', async () => {
    const m = start('active:', 1000)
    const round = (r: number, n: number) => {
      for (let i = 0; i < n; i++) m.packetDone(accountConfig(`u${r}x${i}`), prepare, fulfill, performance.now())
    }
    round(0, 300) // one flush interval: only the first 200 are noted
    await m.flush()
    const key = new Keys('active:').activeAccounts
    expect(await redis.client.zcard(key)).toBe(200)
    expect(await redis.client.zscore(key, 'u0x199')).not.toBeNull()
    expect(await redis.client.zscore(key, 'u0x200')).toBeNull()
    // but every packet is counted
    expect(await redis.client.hget(new Keys('active:').metrics, 'packets|(other)|fulfilled')).toBe('300')
    for (let r = 1; r <= 5; r++) {
      await sleep(5) // a later millisecond: a newer score than the round before
      round(r, 200)
      await m.flush()
    }
    // 1,200 noted in all: the oldest round is gone
    expect(await redis.client.zcard(key)).toBe(1000)
    expect(await redis.client.zscore(key, 'u0x0')).toBeNull()
    expect(await redis.client.zscore(key, 'u1x0')).not.toBeNull()
    expect(await redis.client.zscore(key, 'u5x199')).not.toBeNull()
    expect(await redis.client.zrevrange(key, 0, 0)).toEqual([expect.stringMatching(/^u5x/)])
    await m.close()
  })
})
