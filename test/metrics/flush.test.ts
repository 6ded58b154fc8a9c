import { serializeIlpFulfill, serializeIlpPrepare, serializeIlpReject } from 'ilp-packet'
import type { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FarmMetrics } from '../../src/metrics/farm-metrics.js'
import { connectRedis } from '../../src/store/redis.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The flush into Redis is exactly once: a flush whose EXEC timed out (it may
 * or may not have run) is neither lost nor counted twice, whichever it was.
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

function start(keyPrefix: string): FarmMetrics {
  return FarmMetrics.start({ redis: conn, keyPrefix, bootId: `0-${keyPrefix}`, log: pino({ level: 'silent' }), flushIntervalMs: 3_600_000 })
}

function count(m: FarmMetrics, n: number, reply: Buffer): void {
  for (let i = 0; i < n; i++) m.packetDone('alice', prepare, reply, performance.now())
}

describe('FarmMetrics flush', () => {
  it('adds the counts once, with code labels from the reply bytes (unknown codes: other)', async () => {
    const m = start('once:')
    count(m, 3, fulfill)
    count(m, 2, reject('T04'))
    count(m, 1, reject('X42'))
    await m.flush()
    await m.flush() // nothing new: nothing added
    const hash = await redis.client.hgetall('once:metrics')
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
    expect(await redis.client.hget('ran:metrics', 'packets|alice|fulfilled')).toBe('10')
    count(m, 5, fulfill)
    await m.flush()
    expect(await redis.client.hget('ran:metrics', 'packets|alice|fulfilled')).toBe('15')
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
    expect(await redis.client.hget('lost:metrics', 'packets|alice|fulfilled')).toBeNull()
    await m.flush()
    expect(await redis.client.hget('lost:metrics', 'packets|alice|fulfilled')).toBe('10')
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
    expect(await redis.client.hget('retry:metrics', 'packets|alice|rejected|F02')).toBe('5')
    await m.close()
  })
})
