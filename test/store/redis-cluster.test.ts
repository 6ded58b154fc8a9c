import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Cluster, Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { AccountRegistry } from '../../src/accounts/registry.js'
import { parseAccount } from '../../src/config/load.js'
import type { AccountConfig } from '../../src/config/schema.js'
import { type ClusterNode, type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { callWithFunctionRetry, ensureFunctionsLoaded, isFunctionMissing } from '../../src/store/functions.js'
import { Keys } from '../../src/store/keys.js'
import { connectRedis, describeTarget, isCluster, openSubscriber, publish, type RedisClient, redisTarget, type Subscriber } from '../../src/store/redis.js'

/**
 * The farm's Redis layer on a real Redis Cluster (3 masters, 3 replicas,
 * loopback): the cluster client, sharded pub/sub across the masters, a
 * Functions library kept on every master through a failover and a master
 * added later, and the account registry.
 */
let cluster: LocalCluster
let client: Cluster
const log = pino({ level: 'silent' })
const target = () => ({ cluster: [...cluster.seeds] })
const LIBRARY = {
  name: 't1',
  code: "#!lua name=t1\nredis.register_function('t1_echo', function(keys, args) return args[1] end)",
}

beforeAll(async () => {
  cluster = await startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-rcluster-')), nodeTimeoutMs: 1_000 })
  client = asCluster(await connectRedis(target(), { commandTimeoutMs: 2_000 }))
}, 90_000)

afterAll(async () => {
  client?.disconnect()
  await cluster?.stop()
})

function asCluster(c: RedisClient): Cluster {
  if (!isCluster(c)) throw new Error('expected a cluster client')
  return c
}

/** A plain connection to one node. */
async function onNode<T>(node: ClusterNode, fn: (c: Redis) => Promise<T>): Promise<T> {
  const c = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
  c.on('error', () => undefined)
  try {
    await c.connect()
    return await fn(c)
  } finally {
    c.disconnect()
  }
}

/** Which master serves `key`'s slot now (asks the cluster), and the slot. */
async function ownerOf(key: string): Promise<{ node: ClusterNode; slot: number }> {
  const [any] = await cluster.masters()
  const slot = await onNode(any!, async (c) => Number(await c.cluster('KEYSLOT', key)))
  for (const node of await cluster.masters()) {
    const ranges = await onNode(node, (c) => c.cluster('SLOTS'))
    const owner = ranges.find(([from, until]) => from <= slot && slot <= until)?.[2]?.[1]
    if (owner !== undefined) return { node: cluster.nodes.find((n) => n.port === Number(owner))!, slot }
  }
  throw new Error(`no owner for ${key}`)
}

/** One key per master: `prefix{<n>}` for the first n whose slot each master serves. */
async function keyPerMaster(prefix: string): Promise<Map<number, string>> {
  const found = new Map<number, string>()
  const masters = await cluster.masters()
  for (let n = 0; found.size < masters.length && n < 1000; n++) {
    const key = `${prefix}{${n}}`
    const { node } = await ownerOf(key)
    if (!found.has(node.port)) found.set(node.port, key)
  }
  return found
}

async function eventually<T>(fn: () => Promise<T>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await fn()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
}

function collect(): { messages: string[]; reconnects: number; opts: { onMessage: (m: string) => void; onReconnect: () => void } } {
  const box = { messages: [] as string[], reconnects: 0, opts: { onMessage: (m: string) => box.messages.push(m), onReconnect: () => box.reconnects++ } }
  return box
}

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out')
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('Redis targets', () => {
  it('a config gives a cluster target when it has seeds, else its url; logs show no password', () => {
    expect(redisTarget({ cluster: ['redis://a:7000'], url: undefined })).toEqual({ cluster: ['redis://a:7000'] })
    expect(redisTarget({ url: undefined }, 'redis://embedded:1')).toEqual({ url: 'redis://embedded:1' })
    expect(redisTarget({ url: 'redis://u:2' }, 'redis://embedded:1')).toEqual({ url: 'redis://u:2' })
    expect(describeTarget({ cluster: ['redis://:pw@a:7000', 'redis://b:7001'] })).toBe('cluster redis://:***@a:7000,redis://b:7001')
    expect(describeTarget('redis://:pw@h:6379')).toBe('redis://:***@h:6379')
  })
})

describe('Redis Cluster', () => {
  it('connectRedis with seed nodes gives a cluster client: keys on every master, fail-fast options', async () => {
    expect(isCluster(client)).toBe(true)
    expect(client.options.enableOfflineQueue).toBe(false)
    expect(client.options.scaleReads).toBe('master')
    const keys = await keyPerMaster('rc:k')
    expect(keys.size).toBe(3)
    for (const key of keys.values()) await client.set(key, key)
    for (const key of keys.values()) expect(await client.get(key)).toBe(key)
    // the same function with a url still gives one Redis
    const single = await connectRedis(cluster.nodes[0]!.url, { commandTimeoutMs: 2_000 })
    expect(isCluster(single)).toBe(false)
    single.disconnect()
  })

  it('sharded pub/sub: a subscriber per channel, channels on different masters, published through another client', async () => {
    const channels = [...(await keyPerMaster('rc:ch')).values()]
    const publisher = await connectRedis(target(), { commandTimeoutMs: 2_000 })
    const boxes = channels.map(() => collect())
    const subs: Subscriber[] = []
    try {
      for (const [i, channel] of channels.entries()) subs.push(await openSubscriber(target(), channel, boxes[i]!.opts))
      for (const [i, channel] of channels.entries()) await eventually(async () => expect(await publish(publisher, channel, `m${i}`)).toBe(1))
      await waitFor(() => boxes.every((b) => b.messages.length >= 1))
      expect(boxes.map((b) => b.messages[0])).toEqual(channels.map((_, i) => `m${i}`))
    } finally {
      await Promise.all(subs.map((s) => s.close()))
      publisher.disconnect()
    }
  })

  it('the account registry: created through one worker, read and notified on another', async () => {
    const keys = new Keys('rc:')
    const other = await connectRedis(target(), { commandTimeoutMs: 2_000 })
    const a = await AccountRegistry.start({ redis: client, redisTarget: target(), keys, configAccounts: [], log })
    const b = await AccountRegistry.start({ redis: other, redisTarget: target(), keys, configAccounts: [], log })
    try {
      const changed: string[] = []
      b.onChange((id) => changed.push(id))
      const alice: AccountConfig = account('alice')
      expect((await a.create(alice, 'admin')).status).toBe('written')
      expect((await b.load('alice'))?.account.id).toBe('alice')
      // the creation's own message may have come before that read, which then cached alice: only
      // the update's may count below (one that comes after the read drops the cache, which is as good)
      changed.length = 0
      // b has it cached now; a change through a reaches b over sharded pub/sub
      expect((await a.update({ ...alice, maxPacketAmount: '5' })).status).toBe('written')
      await waitFor(() => changed.includes('alice'))
      expect((await b.load('alice'))?.account.maxPacketAmount).toBe('5')
      // an import of accounts in many slots (no cross-slot MGET, MSETNX or pipeline)
      const ids = Array.from({ length: 30 }, (_, i) => `imp${i}`)
      const outcomes = await a.importMany(ids.map((id) => ({ account: account(id), generatedToken: false })), { update: false, origin: 'admin' })
      expect(outcomes).toEqual(ids.map(() => 'created'))
      expect(await a.importMany([{ account: { ...account('imp1'), maxPacketAmount: '7' }, generatedToken: false }], { update: true, origin: 'admin' })).toEqual(['updated'])
      await waitFor(() => changed.includes('imp1'))
      expect((await b.readNow('imp29'))?.account.id).toBe('imp29')
      expect((await b.load('imp1'))?.account.maxPacketAmount).toBe('7')
      expect(await b.setRpcUrl('imp2', 'https://rpc.example/x')).toBe(true)
      expect((await a.readNow('imp2'))?.rpcUrl).toBe('https://rpc.example/x')
      expect(await a.remove('imp3')).toBeDefined()
      expect(await b.readNow('imp3')).toBeUndefined()
    } finally {
      await a.close()
      await b.close()
      other.disconnect()
    }
  })

  it('a Functions library on every master, still there after a master is SIGKILLed and its replica promoted; subscribers follow', async () => {
    await ensureFunctionsLoaded(client, LIBRARY)
    const keys = await keyPerMaster('rc:f')
    for (const key of keys.values()) expect(await client.call('FCALL', 't1_echo', 1, key, 'hi')).toBe('hi')
    for (const master of await cluster.masters()) {
      expect(await onNode(master, (c) => c.call('FUNCTION', 'LIST', 'LIBRARYNAME', 't1'))).toHaveLength(1)
    }

    const [victimPort, key] = [...keys][0]!
    const victim = cluster.nodes.find((n) => n.port === victimPort)!
    const box = collect()
    const sub = await openSubscriber(target(), key, box.opts)
    try {
      const before = (await cluster.masters()).map((m) => m.port)
      cluster.kill(victim)
      await cluster.waitHealthy(30_000)
      const promoted = (await cluster.masters()).filter((m) => !before.includes(m.port))
      expect(promoted).toHaveLength(1)
      expect((await ownerOf(key)).node.port).toBe(promoted[0]!.port)
      // nobody loads anything: the client finds the new master, which has the library by replication
      expect(await eventually(() => client.call('FCALL', 't1_echo', 1, key, 'after'))).toBe('after')
      // the subscriber of a channel in the victim's slots is moved to the promoted master, and told
      await eventually(async () => expect(await publish(client, key, 'after failover')).toBe(1))
      await waitFor(() => box.messages.includes('after failover'))
      expect(box.reconnects).toBeGreaterThan(0)
    } finally {
      await sub.close()
    }
  }, 60_000)

  it('a master added later gets the library (the client sees it as a new node); one that lost it is reloaded by callWithFunctionRetry', async () => {
    const added = await cluster.addNode()
    const key = 'rc:added{x}'
    const { slot } = await ownerOf(key)
    await client.set(key, 'v')
    await cluster.moveSlot(slot, added)
    expect((await ownerOf(key)).node.port).toBe(added.port)
    // the client learns of the move on its next call there (MOVED), adds the node, and loads the library on it
    expect(await eventually(() => client.get(key))).toBe('v')
    await eventually(async () => expect(await onNode(added, (c) => c.call('FUNCTION', 'LIST', 'LIBRARYNAME', 't1'))).toHaveLength(1))
    expect(await client.call('FCALL', 't1_echo', 1, key, 'new')).toBe('new')

    // a master without the library (flushed behind the client's back): a plain call fails, the retry loads it and succeeds
    await onNode(added, (c) => c.call('FUNCTION', 'DELETE', 't1'))
    const err = await client.call('FCALL', 't1_echo', 1, key, 'x').catch((e: unknown) => e)
    expect(isFunctionMissing(err)).toBe(true)
    expect(await callWithFunctionRetry(client, () => client.call('FCALL', 't1_echo', 1, key, 'retried'))).toBe('retried')
    expect(await onNode(added, (c) => c.call('FUNCTION', 'LIST', 'LIBRARYNAME', 't1'))).toHaveLength(1)
  }, 60_000)
})

function account(id: string): AccountConfig {
  const parsed = parseAccount({ id, relation: 'child', assetCode: 'USD', assetScale: 6 })
  if ('problems' in parsed) throw new Error(parsed.problems.join('; '))
  return parsed.account
}
