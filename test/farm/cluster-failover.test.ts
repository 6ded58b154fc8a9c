import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { cleanEnv, type CliRun, killAllClis } from '../helpers/cli.js'
import { adminSend } from '../helpers/farm.js'
import type { TestPeer } from '../helpers/peer.js'
import { packetOnNewConnection, startTwoWorkerFarm } from '../helpers/two-worker-farm.js'

/**
 * A farm on a Redis Cluster (3 masters, 3 replicas) whose master of the
 * account-change channel is SIGKILLed: its replica takes over, and the farm
 * goes on without a restart: the workers' subscribers follow the channel's
 * slot to the new master, so a change made after the failover reaches both
 * workers, and packets flow.
 */
let cluster: LocalCluster
let bob: TestPeer
let farm: CliRun
let url: string
let tmp: string

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-cfail-'))
  cluster = await startLocalCluster({ dataDir: join(tmp, 'cluster'), nodeTimeoutMs: 1_000 })
  ;({ farm, url, bob } = await startTwoWorkerFarm(tmp, { keyPrefix: 'cf:', env: cleanEnv({ REDIS_CLUSTER: cluster.seeds.join(',') }) }))
}, 120_000)

afterAll(async () => {
  await killAllClis()
  await bob?.close()
  await cluster?.stop()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

/** Until `fn` answers one of `ok` (a failover in progress answers 5xx or fails), at most 15 s. */
async function retried<T extends { status: number }>(fn: () => Promise<T>, ok: number[]): Promise<T | undefined> {
  const deadline = Date.now() + 15_000
  let last: T | undefined
  while (Date.now() < deadline) {
    last = await fn().catch(() => undefined)
    if (last && ok.includes(last.status)) return last
    await new Promise((r) => setTimeout(r, 200))
  }
  return last
}

/** Packets from `from` on new connections until both workers took one; each answer's type. */
async function throughBothWorkers(from: string, token: string): Promise<Map<string, number | undefined>> {
  const seen = new Map<string, number | undefined>()
  for (let i = 0; i < 30 && seen.size < 2; i++) {
    const r = await packetOnNewConnection(url, from, token, 'test.bob.x')
    seen.set(r.shard, r.type)
  }
  return seen
}

describe('a farm on a Redis Cluster through a failover', () => {
  it('the master of the account-change channel is SIGKILLed: after its replica takes over, changes still reach both workers, packets flow', async () => {
    const created = await adminSend<{ token: string }>(url, 'POST', '/admin/accounts', { id: 'dave', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000' })
    expect(created.status).toBe(201)
    // both workers hold dave now
    expect([...(await throughBothWorkers('dave', created.json.token)).values()]).toEqual([Type.TYPE_ILP_FULFILL, Type.TYPE_ILP_FULFILL])

    // the master that serves the channel's slot now
    const [probe] = await cluster.masters()
    const c = new Redis(probe!.url)
    const slot = Number(await c.cluster('KEYSLOT', 'cf:accounts:changed'))
    const ranges = await c.cluster('SLOTS')
    c.disconnect()
    const port = Number(ranges.find(([from, until]) => from <= slot && slot <= until)?.[2]?.[1])
    const victim = cluster.nodes.find((n) => n.port === port)!
    const before = (await cluster.masters()).map((m) => m.port)
    cluster.kill(victim)
    await cluster.waitHealthy(30_000)
    expect((await cluster.masters()).filter((m) => !before.includes(m.port))).toHaveLength(1)

    // a deletion made now reaches both workers only by a message on the channel's new master
    expect((await retried(() => adminSend(url, 'DELETE', '/admin/accounts/dave'), [200]))?.status).toBe(200)
    const deletedAt = Date.now()
    let answers = await throughBothWorkers('dave', created.json.token)
    while ([...answers.values()].some((t) => t !== undefined) && Date.now() - deletedAt < 3_000) answers = await throughBothWorkers('dave', created.json.token)
    expect([...answers.values()]).toEqual([undefined, undefined]) // 401 on both: no packet answer

    // and a new account works on both
    const erin = await retried(() => adminSend<{ token: string }>(url, 'POST', '/admin/accounts', { id: 'erin', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000' }), [201])
    expect(erin?.status).toBe(201)
    expect([...(await throughBothWorkers('erin', erin!.json.token)).values()]).toEqual([Type.TYPE_ILP_FULFILL, Type.TYPE_ILP_FULFILL])
    // the workers were not restarted
    expect(farm.stdout() + farm.stderr()).not.toMatch(/worker \d exited/)
  }, 60_000)
})
