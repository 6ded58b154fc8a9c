import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { cleanEnv, type CliRun, killAllClis, runCli } from '../helpers/cli.js'
import { adminSend, prepareTo, sendIlp } from '../helpers/farm.js'
import { knownCondition, type TestPeer } from '../helpers/peer.js'
import { startTwoWorkerFarm } from '../helpers/two-worker-farm.js'

/**
 * `ilp-farm start` with REDIS_CLUSTER on a real local Redis Cluster (3
 * masters, no replicas): no embedded Redis, two workers on the cluster,
 * accounts added at runtime through the admin API reach both workers over
 * sharded pub/sub.
 */
let cluster: LocalCluster
let bob: TestPeer
let farm: CliRun
let url: string
let tmp: string

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-cstart-'))
  cluster = await startLocalCluster({ dataDir: join(tmp, 'cluster'), replicasPerMaster: 0 })
  // a dataDir that must never be made: with REDIS_CLUSTER the supervisor starts no embedded Redis
  ;({ farm, url, bob } = await startTwoWorkerFarm(tmp, { keyPrefix: 'cs:', redis: { dataDir: join(tmp, 'never') }, env: cleanEnv({ REDIS_CLUSTER: cluster.seeds.join(',') }) }))
}, 120_000)

afterAll(async () => {
  await killAllClis()
  await bob?.close()
  await cluster?.stop()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

async function healthOnNewConnection(): Promise<{ status: number; shard: string }> {
  const client = new Client(url, { pipelining: 1 })
  try {
    const health = await client.request({ path: '/health', method: 'GET' })
    await health.body.dump()
    return { status: health.statusCode, shard: String(health.headers['x-ilp-farm-shard']) }
  } finally {
    await client.close()
  }
}

describe('ilp-farm start on a Redis Cluster', () => {
  it('exits 1 when no seed node of REDIS_CLUSTER answers, naming the seeds', async () => {
    const run = runCli(['start', '--config', join(tmp, 'farm.yaml')], { env: cleanEnv({ REDIS_CLUSTER: 'redis://127.0.0.1:1,redis://127.0.0.1:2' }) })
    expect(await run.waitForExit(30_000)).toEqual({ code: 1, signal: null })
    expect(run.stderr()).toContain('ilp-farm: cannot reach Redis at cluster redis://127.0.0.1:1,redis://127.0.0.1:2')
    expect(existsSync(join(tmp, 'never'))).toBe(false)
  }, 40_000)

  it('starts no embedded Redis; both workers answer; the farm keys are spread over the masters', async () => {
    expect(farm.stdout()).not.toContain('embedded redis-server')
    const shards = new Set<string>()
    for (let i = 0; i < 20 && shards.size < 2; i++) {
      const health = await healthOnNewConnection()
      expect(health.status).toBe(200)
      shards.add(health.shard)
    }
    expect([...shards].sort()).toEqual(['0', '1'])
  })

  it('an account added through the admin API is seen by both workers; a packet from it is fulfilled', async () => {
    const created = await adminSend<{ token: string }>(url, 'POST', '/admin/accounts', { id: 'carol', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000' })
    expect(created.status).toBe(201)
    const seen = new Set<string>()
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const client = new Client(url, { pipelining: 1 })
      try {
        const health = await client.request({ path: '/health', method: 'GET' })
        await health.body.dump()
        const answer = await sendIlp(url, 'carol', prepareTo('test.bob.x', '10', knownCondition()), { token: created.json.token, dispatcher: client })
        expect(answer.packet?.type, JSON.stringify(answer.packet?.data)).toBe(Type.TYPE_ILP_FULFILL)
        seen.add(String(health.headers['x-ilp-farm-shard']))
      } finally {
        await client.close()
      }
    }
    expect([...seen].sort()).toEqual(['0', '1'])
  }, 30_000)

  it('a route added through one worker routes packets on both (routes:changed, published by the script in the {farm} slot)', async () => {
    expect((await adminSend(url, 'PUT', '/admin/routes/test.dave', { account: 'bob' })).status).toBe(200)
    const seen = new Set<string>()
    for (let i = 0; i < 20 && seen.size < 2; i++) {
      const client = new Client(url, { pipelining: 1 })
      try {
        const health = await client.request({ path: '/health', method: 'GET' })
        await health.body.dump()
        const answer = await sendIlp(url, 'alice', prepareTo('test.dave.x', '10', knownCondition()), { token: 'alice-token', dispatcher: client })
        expect(answer.packet?.type, JSON.stringify(answer.packet?.data)).toBe(Type.TYPE_ILP_FULFILL)
        seen.add(String(health.headers['x-ilp-farm-shard']))
      } finally {
        await client.close()
      }
    }
    expect([...seen].sort()).toEqual(['0', '1'])
  }, 30_000)
})
