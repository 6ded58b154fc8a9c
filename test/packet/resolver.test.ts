import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Resolver } from '../../src/packet/resolver.js'
import { Ledger } from '../../src/store/ledger.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** The Resolver's retries of settlements that Redis did not take, against a real Redis. */
let redis: TestRedis
let client: Redis

beforeAll(async () => {
  redis = await startTestRedis()
  client = new Redis(redis.url)
})
afterAll(async () => {
  await redis.client.config('SET', 'min-replicas-to-write', '0').catch(() => undefined)
  client?.disconnect()
  await redis?.close()
})

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('Resolver', () => {
  it('a settlement that keeps failing for a reason of its own does not hold up the others', async () => {
    const ledger = new Ledger(client, 'resolver:')
    await ledger.load()
    const resolver = new Resolver(ledger, pino({ level: 'silent' }))
    const base = { incomingAccount: 'alice', shard: 0, outgoingAccount: 'bob', expiresAtMs: Date.now() + 60_000, minBalance: '-1000', maxBalance: undefined }
    await ledger.prepare({ ...base, packetId: 'stuck', inAmount: '5', outAmount: '5' })
    await ledger.prepare({ ...base, packetId: 'later', inAmount: '7', outAmount: '7' })
    try {
      // Redis refuses writes: both settlements are deferred, the stuck one first in the queue
      await redis.client.config('SET', 'min-replicas-to-write', '1')
      // 'stuck' names the wrong next hop: even with writes allowed again it fails every time
      expect(await resolver.resolve('fulfill', 'alice', 'stuck', 'mallory')).toBe('deferred')
      expect(await resolver.resolve('fulfill', 'alice', 'later', 'bob')).toBe('deferred')
      await redis.client.config('SET', 'min-replicas-to-write', '0')
      const deadline = Date.now() + 8000
      while (Date.now() < deadline && (await ledger.balance('bob')).balance !== '7') await sleep(100)
      expect((await ledger.balance('bob')).balance).toBe('7')
      expect(resolver.backlog).toBe(1) // only the stuck one is left
    } finally {
      await redis.client.config('SET', 'min-replicas-to-write', '0')
      resolver.close()
    }
  })
})
