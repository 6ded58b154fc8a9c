import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, prepareTo, sendIlp, startTestFarm } from '../helpers/farm.js'
import { eventually, sleep } from '../helpers/async.js'
import { fulfillKnown, knownCondition, startTestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { recordsLeft } from '../helpers/in-flight.js'

/** A worker that closes while packets are in flight: it finishes them and then really stops. */
let redis: TestRedis

beforeAll(async () => {
  redis = await startTestRedis()
})

afterAll(async () => {
  await redis?.close()
})

describe('worker close with packets in flight', () => {
  it('answers the packet in flight and closes without waiting for the keep-alive connection to time out', async () => {
    const bob = await startTestPeer(() => 'hang')
    const farm = await startTestFarm(
      redis.url,
      [account('alice', { minBalance: '-1000' }), account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] })],
      { maxHoldTimeMs: 1000 },
    )
    try {
      const pending = sendIlp(farm.url, 'alice', prepareTo('test.bob.x', '5', knownCondition()))
      await eventually(() => expect(bob.received.length).toBe(1))
      const started = Date.now()
      const closed = farm.close()
      const res = await pending
      expect(res.packet?.type).toBe(14) // R00: the next hop never answered
      const outcome = await Promise.race([closed.then(() => 'closed'), sleep(5000).then(() => 'still open')])
      expect(outcome).toBe('closed')
      expect(Date.now() - started).toBeLessThan(5000)
    } finally {
      await bob.close()
    }
  }, 20_000)

  it('a fulfill whose commit was deferred (Redis refused writes) is committed on close, not left for the sweeper to refund', async () => {
    const bob = await startTestPeer(async (prepare) => {
      await sleep(200)
      return fulfillKnown(prepare)
    })
    const farm = await startTestFarm(redis.url, [
      account('alice', { minBalance: '-1000' }),
      account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] }),
    ])
    const prefix = farm.config.redis.keyPrefix
    try {
      const pending = sendIlp(farm.url, 'alice', prepareTo('test.bob.x', '7', knownCondition()))
      await eventually(() => expect(bob.received.length).toBe(1))
      // every write (FCALL included) now fails with NOREPLICAS: the fulfill cannot be committed
      await redis.client.config('SET', 'min-replicas-to-write', '1')
      const res = await pending
      expect(res.packet?.type).toBe(13) // the fulfill goes upstream; its commit is deferred to the Resolver
      expect(farm.worker.services.resolver.backlog).toBe(1)
      // let the Resolver's backoff grow (retries at 0.1, 0.3, 0.7, 1.5 s; the next at 3.1 s), then Redis takes writes again
      await sleep(1700)
      await redis.client.config('SET', 'min-replicas-to-write', '0')
      await farm.close()
      expect(await recordsLeft(redis.client, prefix)).toBe(0)
      expect(await redis.client.hget(`${prefix}{acct:bob}`, 'cold')).toBe('7')
    } finally {
      await redis.client.config('SET', 'min-replicas-to-write', '0')
      await bob.close()
    }
  }, 20_000)
})
