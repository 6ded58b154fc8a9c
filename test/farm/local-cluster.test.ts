import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster, Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { functionLibrary } from '../../src/store/scripts.js'

/**
 * The Redis Cluster the tests and the bench build: 3 masters and 3 replicas
 * of real redis-server processes on loopback. What the farm will rely on:
 * slots spread over the masters, scripts across slots refused, and a
 * Functions library loaded on the masters present on a replica promoted
 * after its master was killed.
 */
let cluster: LocalCluster
let client: Cluster

beforeAll(async () => {
  cluster = await startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-cluster-')), nodeTimeoutMs: 1_000 })
  client = new Cluster(cluster.seeds.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })), {
    clusterRetryStrategy: (times) => Math.min(times * 100, 1000),
  })
  client.on('error', () => {
    // a killed node's connection: the client follows the cluster to the promoted replica
  })
}, 90_000)

afterAll(async () => {
  client?.disconnect()
  await cluster?.stop()
})

describe('local Redis Cluster', () => {
  it('three masters with a replica each serve every slot; keys of many accounts spread over them', async () => {
    expect(await cluster.masters()).toHaveLength(3)
    for (let i = 0; i < 60; i++) await client.hset(`t:{acct:a${i}}`, 'cold', String(i))
    for (let i = 0; i < 60; i++) expect(await client.hget(`t:{acct:a${i}}`, 'cold')).toBe(String(i))
    const perMaster = await Promise.all((await cluster.masters()).map(async (m) => {
      const c = new Redis(m.url)
      try {
        return await c.dbsize()
      } finally {
        c.disconnect()
      }
    }))
    expect(perMaster.filter((n) => n > 0)).toHaveLength(3)
  })

  it('refuses a script whose keys span two slots (CROSSSLOT), and runs one whose keys share a tag', async () => {
    await expect(client.eval("return redis.call('GET', KEYS[1])", 2, 't:{acct:a1}', 't:{acct:a2}')).rejects.toThrow(/CROSSSLOT/)
    expect(await client.eval("redis.call('SET', KEYS[2], 'x') return redis.call('HGET', KEYS[1], 'cold')", 2, 't:{acct:a1}', 't:{acct:a1}:cfg')).toBe('1')
  })

  it('a Functions library loaded on every master is on the replica promoted after its master is SIGKILLed', async () => {
    const library = functionLibrary()
    for (const master of await cluster.masters()) {
      const c = new Redis(master.url)
      await c.call('FUNCTION', 'LOAD', 'REPLACE', library.code)
      c.disconnect()
    }
    const [victim] = await cluster.masters()
    const before = (await cluster.masters()).map((m) => m.port)
    cluster.kill(victim!)
    // its replica takes over after the node timeout; the cluster serves every slot again
    await cluster.waitHealthy(30_000)
    const promoted = (await cluster.masters()).filter((m) => !before.includes(m.port))
    expect(promoted).toHaveLength(1)
    const c = new Redis(promoted[0]!.url)
    try {
      const listed = (await c.call('FUNCTION', 'LIST', 'LIBRARYNAME', library.name)) as unknown[]
      expect(listed).toHaveLength(1)
    } finally {
      c.disconnect()
    }
    // the data of the killed master is served by its successor
    for (let i = 0; i < 60; i++) expect(await client.hget(`t:{acct:a${i}}`, 'cold')).toBe(String(i))
  }, 60_000)
})
