import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { Keys } from '../../src/store/keys.js'
import { account, adminSend, prepareTo, sendIlp, startTestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Which scripts touch one hash slot: a farm does a bit of everything on a
 * plain Redis while every script call is recorded (MONITOR), then a real
 * Redis Cluster says each key's slot (CLUSTER KEYSLOT). Every script must
 * keep to one slot; the packet transitions are the calls still to be split
 * (they need a slot of their own per account before the farm can run on a
 * cluster), so they are named here, and any other script that crosses slots
 * fails this test. The settlement scripts (the check in the account's slot,
 * the relay in the farm's) are among those that must not.
 */
let redis: TestRedis
let cluster: LocalCluster
let peer: TestPeer

beforeAll(async () => {
  ;[redis, cluster, peer] = await Promise.all([
    startTestRedis(),
    startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-slots-')), masters: 3, replicasPerMaster: 0 }),
    startTestPeer(fulfillKnown),
  ])
}, 90_000)

afterAll(async () => {
  await peer?.close()
  await cluster?.stop()
  await redis?.close()
})

describe('hash slots of the scripts', () => {
  it('every script call touches one slot, but for the packet transitions', async () => {
    const prefix = 'slots:'
    const keys = new Keys(prefix)
    const monitor = await redis.client.monitor()
    const calls: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^(eval|evalsha|fcall)$/i.test(args[0] ?? '')) calls.push(args)
    })
    const farm = await startTestFarm(
      redis.url,
      [
        account('alice', { minBalance: '-1000000' }),
        account('bob', { relation: 'peer', outgoing: { url: peer.url }, routes: ['test.bob'], settleThreshold: '500', settleTo: '0' }),
      ],
      { redis: { keyPrefix: prefix } },
    )
    try {
      for (let i = 0; i < 5; i++) expect((await sendIlp(farm.url, 'alice', prepareTo('test.bob.x', '200', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
      expect((await sendIlp(farm.url, 'alice', prepareTo('test.nowhere', '1', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_REJECT)
      await adminSend(farm.url, 'POST', '/admin/accounts/alice/deposits', { amount: '10' }, { headers: { 'idempotency-key': 'd1' } })
      await adminSend(farm.url, 'PUT', '/admin/routes/g.more', { account: 'bob' })
      const created = await adminSend<{ token: string }>(farm.url, 'POST', '/admin/accounts', { id: 'carl', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { callbackUrls: ['http://127.0.0.1:'] } })
      await adminSend(farm.url, 'DELETE', '/admin/accounts/carl')
      expect(created.status).toBe(201)
    } finally {
      await farm.close()
      monitor.disconnect()
    }

    const node = new Redis(cluster.nodes[0]!.url)
    try {
      const slotOf = new Map<string, number>()
      const keyed = calls.map((args) => {
        const n = Number(args[2])
        return { command: args[0]!.toLowerCase(), keys: args.slice(3, 3 + n) }
      })
      for (const key of new Set(keyed.flatMap((c) => c.keys))) slotOf.set(key, Number(await node.cluster('KEYSLOT', key)))
      const crossing = keyed.filter((c) => new Set(c.keys.map((k) => slotOf.get(k))).size > 1)
      const stillToSplit = (c: { command: string }) => c.command === 'fcall'
      expect(keyed.length).toBeGreaterThan(10)
      expect(crossing.filter((c) => !stillToSplit(c))).toEqual([])
      // the heartbeat, the lease, the route and the settlement scripts ran, each in one slot
      expect(keyed.some((c) => c.keys.includes(keys.workers))).toBe(true)
      expect(keyed.some((c) => c.keys.includes(keys.leader))).toBe(true)
      expect(keyed.some((c) => c.keys.includes(keys.routes))).toBe(true)
      expect(keyed.some((c) => c.keys.includes(keys.settleRequests('bob')))).toBe(true)
      expect(keyed.some((c) => c.keys.includes(keys.settlements))).toBe(true)
    } finally {
      node.disconnect()
    }
  }, 60_000)
})
