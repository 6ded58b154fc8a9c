/**
 * The farms the bench measures: each an `ilp-farm start` process of its own
 * (its own config, port and key prefix) on the bench's single Redis or on
 * its local Redis Cluster, started, named and stopped here.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort } from '../farm/embedded-redis.js'
import { packageRoot } from '../util/package-root.js'
import { RECEIVER_TOKEN, SENDER_TOKEN } from './packets.js'

/** The farm's CLI beside this module: src/cli/main.ts under tsx, dist/src/cli/main.js once built. */
export const FARM_MAIN = fileURLToPath(new URL(`../cli/main${extname(fileURLToPath(import.meta.url))}`, import.meta.url))

/** The masters of each local cluster: one of masters only, and (--cluster-replicas 1, the default) one whose masters have a replica each, so that durability replica can be measured. */
export const CLUSTER_MASTERS = 3
/** Long enough that a node busy under the bench on a small machine is never taken for dead (a failover mid-run). */
export const CLUSTER_NODE_TIMEOUT_MS = 15_000

/** How a farm's Redis is measured: INFO commandstats summed over its masters, and CPU time of its masters and replicas. */
export interface RedisProbe {
  commandStats(): Promise<Map<string, number>>
  /** CPU µs so far of the masters and (cluster) of the replicas; undefined where /proc is not there. */
  cpu(): { masters: number | undefined; replicas: number | undefined }
}

/**
 * A farm to measure: its size and its Redis. `single`: the one server.
 * `cluster`: the cluster of masters only, compared like for like with the
 * single Redis, which has no replica either. `cluster-replicated`: the
 * cluster whose masters have a replica each, durability none, and
 * `cluster-replica` the same cluster with redis.durability replica: the two
 * give what waiting for the replicas costs.
 */
export interface FarmSpec {
  workers: number
  redis: 'single' | 'cluster' | 'cluster-replicated' | 'cluster-replica'
}

/** Whether a farm runs on the cluster with replicas (else on the single Redis or the masters-only cluster). */
export const onReplicatedCluster = (spec: FarmSpec): boolean => spec.redis === 'cluster-replicated' || spec.redis === 'cluster-replica'

export interface FarmHandle {
  spec: FarmSpec
  child: ChildProcess
  url: string
  output: () => string
  probe: RedisProbe
}

/** Where a farm's Redis is: a single server's URL, or a cluster's seeds. */
type FarmRedisTarget = { url: string } | { cluster: readonly string[] }

export function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

export function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (exited(child)) return Promise.resolve(true)
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), ms)
    child.once('exit', () => {
      clearTimeout(timer)
      done(true)
    })
  })
}

export async function stopFarm(farm: ChildProcess): Promise<void> {
  if (exited(farm) || farm.pid === undefined) return
  farm.kill('SIGTERM') // the supervisor shuts its worker down, then exits
  if (await waitExit(farm, 15_000)) return
  try {
    process.kill(-farm.pid, 'SIGKILL') // its own process group: the supervisor and its worker
  } catch {
    farm.kill('SIGKILL')
  }
  await waitExit(farm, 5_000)
}

/** Starts a farm (its process in `farms` at once, for the bench's cleanup) and waits until it listens. */
export async function startFarm(
  tmp: string,
  target: FarmRedisTarget,
  receiverUrl: string,
  spec: FarmSpec,
  probe: RedisProbe,
  farms: ChildProcess[],
): Promise<FarmHandle> {
  const { workers } = spec
  const port = await freePort()
  const tag = spec.redis === 'single' ? `${workers}w` : `${workers}w-${spec.redis}`
  const config = {
    ilpAddress: 'test.farm',
    http: { host: '127.0.0.1', port },
    workers,
    redis: {
      dataDir: join(tmp, 'farm-redis-unused'),
      keyPrefix: `bench${tag}:`,
      ...(spec.redis === 'cluster-replica' ? { durability: 'replica' } : {}),
    },
    log: { level: 'warn' },
    accounts: [
      {
        id: 'sender',
        relation: 'child',
        assetCode: 'USD',
        assetScale: 6,
        minBalance: '-1000000000000000000',
        incoming: { token: SENDER_TOKEN },
      },
      {
        id: 'receiver',
        relation: 'peer',
        assetCode: 'USD',
        assetScale: 6,
        outgoing: { url: receiverUrl, token: RECEIVER_TOKEN },
        routes: ['test.receiver'],
      },
    ],
  }
  const configFile = join(tmp, `farm-${tag}.json`)
  writeFileSync(configFile, JSON.stringify(config, null, 2))
  // the farm's Redis comes from the environment: REDIS_URL or REDIS_CLUSTER, never both
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.REDIS_URL
  delete env.REDIS_CLUSTER
  if ('url' in target) env.REDIS_URL = target.url
  else env.REDIS_CLUSTER = target.cluster.join(',')
  const child = spawn(process.execPath, [...process.execArgv, FARM_MAIN, 'start', '--config', configFile], {
    cwd: packageRoot(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: the bench stops it (and its worker) in order
  })
  farms.push(child)
  const { url, output } = await untilListening(child, 30_000)
  return { spec, child, url, output, probe }
}

/**
 * Keeps the last lines a started farm prints and resolves with its URL once
 * it says it listens; rejects when it exits first or stays silent too long.
 */
export async function untilListening(child: ChildProcess, timeoutMs: number): Promise<{ url: string; output: () => string }> {
  let tail = ''
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-8000)
  }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`farm did not print "listening on" within ${timeoutMs / 1000} s:\n${tail}`)), timeoutMs)
    const onData = () => {
      const m = /listening on (https?:\/\/\S+)/.exec(tail)
      if (m) {
        clearTimeout(timer)
        child.stdout?.off('data', onData)
        child.off('exit', onExit)
        resolve(m[1]!)
      }
    }
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer)
      reject(new Error(`farm exited (${signal ?? `code ${code}`}) before listening:\n${tail}`))
    }
    child.stdout?.on('data', onData)
    child.once('exit', onExit)
  })
  return { url, output: () => tail }
}

/** A single-Redis farm's name: `farm 1w`. */
export const workersLabel = (w: number) => `farm ${w}w`
/**
 * A farm's name in the logs and the targets: `farm 1w` (single Redis),
 * `cluster 1w` (masters only), `cluster+r 1w` (masters with a replica each)
 * and `cluster+r 1w replica` (the same, durability replica).
 */
export function farmLabel(spec: FarmSpec): string {
  switch (spec.redis) {
    case 'single':
      return workersLabel(spec.workers)
    case 'cluster':
      return `cluster ${spec.workers}w`
    case 'cluster-replicated':
      return `cluster+r ${spec.workers}w`
    case 'cluster-replica':
      return `cluster+r ${spec.workers}w replica`
  }
}
