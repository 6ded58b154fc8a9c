import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Keys } from '../../src/store/keys.js'
import { account, adminGet, balanceOf, startTestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * A farm from before its farm-wide keys shared the {farm} hash tag: the first
 * worker to start renames them, so nothing it held is lost, a packet in
 * flight included.
 */
let redis: TestRedis

beforeAll(async () => {
  redis = await startTestRedis()
})

afterAll(async () => {
  await redis?.close()
})

describe('farm keys renamed to their {farm}-tagged names', () => {
  it('keeps the routing table, the metrics and a packet in flight, which the sweeper then refunds', async () => {
    const prefix = 'mig:'
    const keys = new Keys(prefix)
    // a packet of 100 from alice, reserved by a worker that is gone, expired a while ago
    await redis.client.hset(`${prefix}{acct:alice}`, 'cold', '-100')
    await redis.client.hset(`${prefix}hotset`, 'alice|pkt-1', `0|0-deadbeefdead|${Date.now() - 60_000}|100|bob|100|0`)
    await redis.client.hset(`${prefix}routes`, 'g.elsewhere', JSON.stringify({ peer: { source: 'static', addedBy: 'admin' } }))
    await redis.client.hset(`${prefix}metrics`, 'packets|peer|fulfilled', '7')
    const farm = await startTestFarm(
      redis.url,
      [account('alice'), account('bob'), account('peer', { relation: 'peer', outgoing: { url: 'http://127.0.0.1:9/' } })],
      { redis: { keyPrefix: prefix }, farm: { heartbeatIntervalMs: 100, heartbeatTtlMs: 300, leaderLeaseMs: 600, sweepIntervalMs: 100 } },
    )
    try {
      for (const old of ['hotset', 'routes', 'metrics']) expect(await redis.client.exists(`${prefix}${old}`)).toBe(0)
      expect(await redis.client.hget(keys.metrics, 'packets|peer|fulfilled')).toBe('7')
      const routes = await adminGet<{ routes: Array<{ prefix: string; candidates: Array<{ account: string }> }> }>(farm.url, '/admin/routes')
      expect(routes.json.routes.find((r) => r.prefix === 'g.elsewhere')?.candidates.map((c) => c.account)).toEqual(['peer'])
      // the leader's sweeper finds the old packet under the new name and gives alice her 100 back
      const deadline = Date.now() + 5_000
      while ((await balanceOf(farm.url, 'alice')) !== '0' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(await balanceOf(farm.url, 'alice')).toBe('0')
      expect(await redis.client.exists(keys.legacyHotSet, keys.inflight('alice'), keys.credits('bob'))).toBe(0)
    } finally {
      await farm.close()
    }
  })
})
