/**
 * One whole bench: it starts Redis (and a local Redis Cluster), the
 * receiver, the floor, ilp-connector and the farms, checks each with one packet, measures
 * (measure.ts), builds the report (report.ts), and stops everything it
 * started, also on error or interruption. `npm run bench` (main.ts) and
 * `ilp-farm bench` (src/cli/commands/bench.ts) both run it.
 */
import type { ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { deserializeIlpFulfill, deserializeIlpPrepare } from 'ilp-packet'
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import { type EmbeddedRedis, startEmbeddedRedis } from '../farm/embedded-redis.js'
import { type LocalCluster, startLocalCluster } from '../farm/local-cluster.js'
import type { Target } from './drive.js'
import {
  CLUSTER_MASTERS,
  CLUSTER_NODE_TIMEOUT_MS,
  exited,
  type FarmHandle,
  farmLabel,
  type FarmSpec,
  onReplicatedCluster,
  type RedisProbe,
  startFarm,
  stopFarm,
  waitExit,
} from './farms.js'
import { cleanUpOnFatalError } from './fatal.js'
import { type BenchProgress, clusterProbe, load, LoadProgress, singleProbe, type TargetName } from './measure.js'
import type { BenchOptions } from './options.js'
import { ENV_SECRET, OCTET, outcomeOf, PacketFactory, SENDER_TOKEN } from './packets.js'
import { type BenchReport, CONNECTOR, type LevelResult, REDIS_FLOOR, report } from './report.js'
import { connectorVersion, floorEnv, type RoleHandle, startRole } from './roles.js'

export type { BenchProgress } from './measure.js'

const stderrLog = (line: string): void => void process.stderr.write(`${line}\n`)
/** Where progress lines go: stderr as a script, the caller's sink under runBench(hooks.log). */
let log = stderrLog

// -- resources, all released by cleanup()

const resources: {
  tmp?: string
  redis?: EmbeddedRedis
  redisClient?: Redis
  /** The masters-only cluster, then (--cluster-replicas 1) the one with replicas. */
  clusters: LocalCluster[]
  /** One client per cluster master, for INFO. */
  clusterClients: Redis[]
  children: ChildProcess[]
  farms: ChildProcess[]
  pools: Pool[]
} = { children: [], farms: [], pools: [], clusters: [], clusterClients: [] }
let cleaningUp: Promise<void> | undefined
let aborted = false
/** One bench per process: its processes and temp folder live in the module state above. */
let running = false

function cleanup(): Promise<void> {
  cleaningUp ??= (async () => {
    aborted = true
    await Promise.allSettled(resources.pools.map((p) => p.destroy()))
    await Promise.allSettled(resources.farms.map((farm) => stopFarm(farm)))
    await Promise.allSettled(
      resources.children.map(async (child) => {
        if (exited(child)) return
        child.kill('SIGTERM')
        if (!(await waitExit(child, 5_000))) child.kill('SIGKILL')
      }),
    )
    resources.redisClient?.disconnect()
    for (const client of resources.clusterClients) client.disconnect()
    if (resources.redis) await resources.redis.stop().catch(() => undefined)
    await Promise.allSettled(resources.clusters.map((c) => c.stop()))
    if (resources.tmp) rmSync(resources.tmp, { recursive: true, force: true })
  })()
  return cleaningUp
}

export interface BenchHooks {
  /** Called at each step and about every 250 ms while load runs. */
  onProgress?: (progress: BenchProgress) => void
  /** The bench's progress lines (default: stderr). */
  log?: (line: string) => void
}

/**
 * Runs the whole bench: starts Redis, receiver, floor and farms, measures,
 * and stops them all (also on error). Resolves with the report, or undefined
 * when stopBench() interrupted it. One at a time per process.
 */
export async function runBench(opts: BenchOptions, hooks: BenchHooks = {}): Promise<BenchReport | undefined> {
  if (running) throw new Error('a bench is already running in this process')
  running = true
  resources.children = []
  resources.farms = []
  resources.pools = []
  resources.clusters = []
  resources.clusterClients = []
  cleaningUp = undefined
  aborted = false
  log = hooks.log ?? stderrLog
  try {
    // before anything starts: without the devDependency, say how to run without it
    const version = opts.connector ? connectorVersion() : undefined
    if (opts.connector && version === undefined) throw new Error(`${CONNECTOR} is not installed (it is a devDependency): run the bench with --no-connector`)
    const levels = await setUpAndMeasure(opts, hooks.onProgress ?? (() => undefined))
    return levels === undefined ? undefined : report(opts, levels, version)
  } finally {
    await cleanup()
    running = false
  }
}

/** Interrupts a running bench and releases its processes and files (for a signal handler). */
export function stopBench(): Promise<void> {
  return cleanup()
}

/** Stops the bench and exits 1 when its output goes away or an uncaught error escapes (see fatal.ts). */
export function stopBenchOnFatalError(): void {
  cleanUpOnFatalError(cleanup)
}

/**
 * The farms to measure: per --workers entry, the single-Redis one, then
 * (--redis cluster) the masters-only cluster's and, unless --cluster-replicas
 * 0, the replicated cluster's with durability none and replica.
 */
function farmSpecs(opts: BenchOptions): FarmSpec[] {
  const clusterKinds: Array<FarmSpec['redis']> = opts.clusterReplicas > 0 ? ['cluster', 'cluster-replicated', 'cluster-replica'] : ['cluster']
  const kinds: Array<FarmSpec['redis']> = opts.redis.includes('cluster') ? ['single', ...clusterKinds] : ['single']
  return kinds.flatMap((redis) => opts.workers.map((workers) => ({ workers, redis })))
}

/** One of the bench's local clusters, in its temp dir, stopped by cleanup(). */
async function startBenchCluster(tmp: string, replicasPerMaster: number): Promise<LocalCluster> {
  const local = await startLocalCluster({
    dataDir: join(tmp, `cluster-${replicasPerMaster}`),
    masters: CLUSTER_MASTERS,
    replicasPerMaster,
    nodeTimeoutMs: CLUSTER_NODE_TIMEOUT_MS,
    // persisted as the single Redis is: the two are compared like for like
    appendonly: true,
  })
  resources.clusters.push(local)
  if (aborted) await local.stop() // cleanup() ran while it started
  return local
}

async function setUpAndMeasure(opts: BenchOptions, onProgress: (p: BenchProgress) => void): Promise<LevelResult[] | undefined> {
  const perRun = opts.warmupMs + opts.durationMs
  const specs = farmSpecs(opts)
  const targetCount = 1 + (opts.redisFloor ? 1 : 0) + (opts.connector ? 1 : 0) + specs.length
  const totalMs = opts.concurrency.length * opts.runs * targetCount * perRun
  const step = (name: string) => onProgress({ doneMs: 0, totalMs, step: name })

  const tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-bench-'))
  resources.tmp = tmp
  const secret = randomBytes(32)

  step('starting redis-server')
  const redis = await startEmbeddedRedis({ dataDir: join(tmp, 'redis'), appendonly: true, appendfsync: 'everysec' })
  resources.redis = redis
  const redisClient = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  resources.redisClient = redisClient
  await redisClient.connect()
  log(`bench: redis-server at ${redis.url} (appendonly yes, appendfsync everysec)`)

  // the clusters come up (node start, redis-cli --cluster create, replicas syncing) while the rest starts;
  // one after the other, so that the two never pick the same free port
  const clustersStarting = opts.redis.includes('cluster')
    ? (async () => {
        const mastersOnly = await startBenchCluster(tmp, 0)
        return { mastersOnly, replicated: opts.clusterReplicas > 0 ? await startBenchCluster(tmp, opts.clusterReplicas) : undefined }
      })()
    : undefined
  clustersStarting?.catch(() => undefined) // awaited below; a failure meanwhile is not unhandled

  step(`starting receiver, floor${opts.redisFloor ? `, ${REDIS_FLOOR}` : ''}${opts.connector ? ` and ${CONNECTOR}` : ''}`)
  const receiver = await startRole('receiver', { [ENV_SECRET]: secret.toString('hex') }, resources.children)
  log(`bench: receiver (pid ${receiver.child.pid}) at ${receiver.url}`)
  const floor = await startRole('floor', floorEnv(receiver.url), resources.children)
  log(`bench: floor (pid ${floor.child.pid}) at ${floor.url}`)
  let redisFloor: RoleHandle | undefined
  if (opts.redisFloor) {
    redisFloor = await startRole('redis-floor', floorEnv(receiver.url, redis.url), resources.children)
    log(`bench: ${REDIS_FLOOR} (pid ${redisFloor.child.pid}, each packet's record written to the farms' Redis and deleted once answered) at ${redisFloor.url}`)
  }
  let connector: RoleHandle | undefined
  if (opts.connector) {
    connector = await startRole('connector', floorEnv(receiver.url), resources.children)
    log(`bench: ${CONNECTOR} ${connectorVersion()} (pid ${connector.child.pid}, in-memory balances, rate limit off) at ${connector.url}`)
  }
  const single = singleProbe(redis, redisClient)
  type MeasuredCluster = { seeds: readonly string[]; probe: RedisProbe }
  let mastersOnly: MeasuredCluster | undefined
  let replicated: MeasuredCluster | undefined
  if (clustersStarting) {
    step('starting the Redis Clusters')
    const local = await clustersStarting
    const measured = async (c: LocalCluster, replicas: number, why: string): Promise<MeasuredCluster> => {
      log(`bench: Redis Cluster of ${CLUSTER_MASTERS} masters x ${replicas} replica at ${c.seeds.join(',')} (appendonly yes, appendfsync everysec, as the single Redis): ${why}`)
      return { seeds: c.seeds, probe: await clusterProbe(c, resources.clusterClients) }
    }
    mastersOnly = await measured(local.mastersOnly, 0, 'like for like with the single Redis, which has no replica either')
    if (local.replicated) replicated = await measured(local.replicated, opts.clusterReplicas, 'durability none against replica')
  }
  const clusterOf = (spec: FarmSpec): MeasuredCluster => (onReplicatedCluster(spec) ? replicated! : mastersOnly!)
  // the farms start side by side: each is idle until its turn under load
  step(`starting ${specs.length === 1 ? farmLabel(specs[0]!) : `${specs.length} farms`}`)
  const started = await Promise.all(
    specs.map((spec) => {
      if (spec.redis === 'single') return startFarm(tmp, { url: redis.url }, receiver.url, spec, single, resources.farms)
      const cluster = clusterOf(spec)
      return startFarm(tmp, { cluster: cluster.seeds }, receiver.url, spec, cluster.probe, resources.farms)
    }),
  )
  const farms = new Map<TargetName, FarmHandle>()
  for (const farm of started) {
    const { spec } = farm
    farms.set(farmLabel(spec), farm)
    const what = {
      single: '',
      cluster: ', Redis Cluster of masters only',
      'cluster-replicated': ', Redis Cluster with replicas',
      'cluster-replica': ', Redis Cluster with replicas, durability replica',
    }[spec.redis]
    log(`bench: farm (pid ${farm.child.pid}, ${spec.workers} worker${spec.workers === 1 ? '' : 's'}${what}) at ${farm.url}`)
  }

  const maxConcurrency = Math.max(...opts.concurrency)
  const pool = (url: string) => {
    const p = new Pool(new URL(url).origin, {
      connections: maxConcurrency,
      keepAliveTimeout: 30_000,
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    })
    resources.pools.push(p)
    return p
  }
  const headers = { 'content-type': OCTET, authorization: `Bearer ${SENDER_TOKEN}` }
  const targets = new Map<TargetName, Target>([['floor', { name: 'floor', pool: pool(floor.url), path: new URL(floor.url).pathname, headers }]])
  if (redisFloor) targets.set(REDIS_FLOOR, { name: 'floor', pool: pool(redisFloor.url), path: new URL(redisFloor.url).pathname, headers })
  if (connector) targets.set(CONNECTOR, { name: CONNECTOR, pool: pool(connector.url), path: new URL(connector.url).pathname, headers })
  for (const [name, farm] of farms) {
    targets.set(name, { name: 'farm', pool: pool(farm.url), path: '/accounts/sender/ilp', headers })
  }
  const packets = new PacketFactory(secret)
  const farmOutput = () => [...farms.values()].map((f) => f.output()).join('\n')
  const outputOf = (name: TargetName) =>
    name === CONNECTOR
      ? `${CONNECTOR} output:\n${connector!.output()}`
      : farms.has(name)
        ? `farm output:\n${farmOutput()}`
        : `${name} printed to the bench's stderr, above`

  step('preflight')
  await preflight(targets, packets, outputOf)

  const estimate = Math.ceil((opts.concurrency.length * opts.runs * targets.size * perRun) / 1000)
  log(
    `bench: concurrency ${opts.concurrency.join(',')}, floor${redisFloor ? `, ${REDIS_FLOOR}` : ''}${connector ? `, ${CONNECTOR}` : ''}, farms of ${opts.workers.join(',')} worker(s)` +
      `${mastersOnly ? ` on a single Redis and on a Redis Cluster of masters only${replicated ? ', and of masters with replicas (durability none, replica)' : ''}` : ''}, ${opts.runs} run(s) x ` +
      `${opts.durationMs / 1000} s (+${opts.warmupMs / 1000} s warm-up) per target; about ${estimate} s of load`,
  )

  const progress = new LoadProgress(perRun, totalMs, onProgress)
  let levels: LevelResult[] | undefined
  try {
    const setup = {
      targets,
      farms,
      floor,
      receiver,
      ...(redisFloor ? { redisFloor: { child: redisFloor.child, probe: single } } : {}),
      ...(connector ? { connector } : {}),
      packets,
    }
    levels = await load(opts, setup, progress, { log, stopped: () => aborted })
  } finally {
    progress.stop()
  }
  if (levels === undefined) return undefined
  onProgress({ doneMs: totalMs, totalMs, step: 'done' })

  const farmTail = farmOutput().trim()
  if (farmTail.split('\n').some((l) => l !== '' && !l.startsWith('ilp-farm:') && !l.includes('"msg":"Server listening'))) {
    log(`bench: farm output (last lines):\n${farmTail}`)
  }
  return levels
}

/** One packet through each target, the fulfillment checked end to end; `outputOf` is what a target that fails printed. */
async function preflight(targets: Map<TargetName, Target>, packets: PacketFactory, outputOf: (name: TargetName) => string): Promise<void> {
  for (const [name, target] of targets) {
    const body = packets.next()
    const prepare = deserializeIlpPrepare(body)
    const res = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body })
    const answer = Buffer.from(await res.body.arrayBuffer())
    const outcome = outcomeOf(res.statusCode, answer)
    if (outcome !== 'fulfill') throw new Error(`preflight: ${name} answered ${outcome}; ${outputOf(name)}`)
    const { fulfillment } = deserializeIlpFulfill(answer)
    if (!createHash('sha256').update(fulfillment).digest().equals(prepare.executionCondition)) {
      throw new Error(`preflight: ${name} returned a fulfillment that does not match the condition`)
    }
  }
}
