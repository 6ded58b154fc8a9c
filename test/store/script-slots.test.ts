import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { Keys } from '../../src/store/keys.js'
import { Ledger } from '../../src/store/ledger.js'
import { account, adminSend, prepareTo, sendIlp, startTestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Which scripts touch one hash slot: a farm does a bit of everything on a
 * plain Redis while every script call is recorded (MONITOR), then a real
 * Redis Cluster says each key's slot (CLUSTER KEYSLOT). Every script must
 * keep to one slot. On one Redis, an FCALL of the packet library may carry
 * the one-slot transitions of several accounts (each packet step chained in
 * one call, a batch of them per turn: legal where every slot is on one
 * Redis); split, as on a cluster, every FCALL keeps to one slot, which the
 * second test shows (test/packet/cluster.test.ts runs the farm on a real
 * cluster, which refuses any call across slots). The settlement scripts (the
 * check in the account's slot, the relay in the farm's) keep to one slot too.
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
  it('every script call touches one slot; an FCALL of chained packet steps spans accounts only on one Redis', async () => {
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
      const chainedOnOneRedis = (c: { command: string }) => c.command === 'fcall'
      expect(keyed.length).toBeGreaterThan(10)
      expect(crossing.filter((c) => !chainedOnOneRedis(c))).toEqual([])
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

  it('split as on a cluster, every packet transition keeps to one slot: prepare, fulfill, reject, and what the sweeper and the audit do', async () => {
    const prefix = 'split:'
    const client = new Redis(redis.url)
    const monitor = await redis.client.monitor()
    const calls: string[][] = []
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (/^fcall$/i.test(args[0] ?? '')) calls.push(args)
    })
    try {
      const ledger = new Ledger(client, prefix, { bootId: '0-split', split: true })
      const packet = (id: string, maxBalance?: string) => ({
        incomingAccount: 'alice', packetId: id, shard: 0, inAmount: '10', outgoingAccount: 'bob', outAmount: '10',
        expiresAtMs: Date.now() + 30_000, minBalance: '-1000', maxBalance,
      })
      expect(await ledger.prepare(packet('f'))).toBe('ok')
      expect(await ledger.fulfill('alice', 'f', 'bob')).toBe('ok')
      expect(await ledger.prepare(packet('r', '100'))).toBe('ok')
      expect(await ledger.reject('alice', 'r', 'bob')).toBe('ok')
      expect(await ledger.prepare(packet('x', '5'))).toBe('exceeds-max-balance')
      expect(await ledger.prepare(packet('o'))).toBe('ok')
      const [record] = await ledger.hotSet()
      expect(await ledger.refundRecord(record!)).toBe('ok')
      expect(await ledger.creditRecord(record!)).toBe('gone')
      await new Promise((r) => setTimeout(r, 100)) // MONITOR lines trail the commands a little
    } finally {
      monitor.disconnect()
      client.disconnect()
    }
    const node = new Redis(cluster.nodes[0]!.url)
    try {
      const slots = await Promise.all(calls.map(async (args) => new Set(await Promise.all(args.slice(3, 3 + Number(args[2])).map(async (k) => Number(await node.cluster('KEYSLOT', k)))))))
      expect(calls.length).toBeGreaterThanOrEqual(10)
      expect(slots.filter((s) => s.size !== 1)).toEqual([])
    } finally {
      node.disconnect()
    }
  }, 30_000)
})
