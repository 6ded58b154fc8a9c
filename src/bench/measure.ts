/**
 * What the bench measures, run by run: each target driven in turn at each
 * concurrency (the order rotated between runs), with the CPU time of the
 * forwarding processes and of Redis (Linux /proc) and the Redis commands the
 * run caused (INFO commandstats), read before and after.
 */
import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { performance } from 'node:perf_hooks'
import { Redis } from 'ioredis'
import type { EmbeddedRedis } from '../farm/embedded-redis.js'
import type { LocalCluster } from '../farm/local-cluster.js'
import { drive, type RunResult, type Target } from './drive.js'
import { CLUSTER_MASTERS, exited, type FarmHandle, farmLabel, type FarmSpec, type RedisProbe } from './farms.js'
import type { BenchOptions } from './options.js'
import type { PacketFactory } from './packets.js'
import {
  CONNECTOR,
  fmt,
  type LevelResult,
  levelTargets,
  REDIS_FLOOR,
  summarize,
  summarizeCluster,
  summarizeConnector,
  summarizeFarm,
  summarizeRedisFloor,
} from './report.js'

/** 'floor', 'floor+redis' (REDIS_FLOOR), 'ilp-connector' (CONNECTOR), or a farm's label (farmLabel). */
export type TargetName = string

/** Where the load's lines go, and whether the bench was interrupted. */
export interface RunContext {
  log: (line: string) => void
  stopped: () => boolean
}

// -- redis command counts

function commandStats(info: string): Map<string, number> {
  const stats = new Map<string, number>()
  for (const line of info.split(/\r?\n/)) {
    const m = /^cmdstat_([^:]+):calls=(\d+)/.exec(line)
    if (m) stats.set(m[1]!, Number(m[2]))
  }
  return stats
}

/** The bench's own INFO calls are not the farm's, nor a cluster replica's acknowledgements to its master. */
const IGNORED_COMMANDS = new Set(['info', 'replconf'])

function commandDelta(before: Map<string, number>, after: Map<string, number>): Record<string, number> {
  const delta: Record<string, number> = {}
  for (const [name, calls] of after) {
    if (IGNORED_COMMANDS.has(name)) continue
    const d = calls - (before.get(name) ?? 0)
    if (d > 0) delta[name] = d
  }
  return delta
}

// -- CPU time per packet (Linux /proc): robust to a noisy machine, unlike packets/s

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100

/** utime + stime of a process in microseconds, or undefined where /proc is not there. */
function cpuMicros(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS_PER_SECOND
  } catch {
    return undefined
  }
}

/** The processes whose parent is ppid (the farm supervisor's workers). */
export function childPids(ppid: number): number[] {
  const out: number[] = []
  let entries: string[] = []
  try {
    entries = readdirSync('/proc')
  } catch {
    return out
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(fields[1]) === ppid) out.push(Number(entry))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

export function cpuOf(pids: number[]): number | undefined {
  let total = 0
  for (const pid of pids) {
    const t = cpuMicros(pid)
    if (t === undefined) return undefined
    total += t
  }
  return total
}

// -- probes of a farm's Redis

/** INFO commandstats of one node. */
async function nodeStats(client: Redis): Promise<Map<string, number>> {
  return commandStats(await client.info('commandstats'))
}

export function singleProbe(redis: EmbeddedRedis, client: Redis): RedisProbe {
  return {
    commandStats: () => nodeStats(client),
    cpu: () => ({ masters: cpuOf([redis.process.pid!]), replicas: undefined }),
  }
}

/**
 * The cluster measured as a whole: calls summed over its masters (a farm
 * talks to masters only), CPU of the masters and of the replicas apart. The
 * roles are the ones at start: the long node timeout keeps them.
 */
export async function clusterProbe(cluster: LocalCluster, clients: Redis[]): Promise<RedisProbe> {
  const masters = await cluster.masters()
  if (masters.length !== CLUSTER_MASTERS) throw new Error(`local cluster: ${masters.length} masters, expected ${CLUSTER_MASTERS}`)
  const replicas = cluster.nodes.filter((n) => !masters.includes(n))
  const masterClients: Redis[] = []
  for (const node of masters) {
    const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    clients.push(client)
    await client.connect()
    masterClients.push(client)
  }
  return {
    async commandStats() {
      const total = new Map<string, number>()
      for (const stats of await Promise.all(masterClients.map(nodeStats))) {
        for (const [name, calls] of stats) total.set(name, (total.get(name) ?? 0) + calls)
      }
      return total
    },
    cpu: () => ({
      masters: cpuOf(masters.map((n) => n.redis.process.pid!)),
      replicas: cpuOf(replicas.map((n) => n.redis.process.pid!)),
    }),
  }
}

// -- runs

/** Where a bench is: load done and planned (warm-up included; start-up and preflight are not counted). */
export interface BenchProgress {
  doneMs: number
  totalMs: number
  /** What runs now, e.g. "starting farm 2w" or "c=10 run 1/3 floor". */
  step: string
}

const PROGRESS_INTERVAL_MS = 250

/** Load time done so far: whole runs finished plus the running one's elapsed time, reported on a timer. */
export class LoadProgress {
  private completedMs = 0
  private runStartedAt: number | undefined
  private step = ''
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly perRunMs: number,
    private readonly totalMs: number,
    private readonly onProgress: (p: BenchProgress) => void,
  ) {
    this.timer = setInterval(() => this.emit(), PROGRESS_INTERVAL_MS)
    this.timer.unref()
  }

  runStarted(step: string): void {
    this.step = step
    this.runStartedAt = performance.now()
    this.emit()
  }

  runEnded(): void {
    this.completedMs += this.perRunMs
    this.runStartedAt = undefined
    this.emit()
  }

  stop(): void {
    clearInterval(this.timer)
  }

  private emit(): void {
    // A run drains its requests in flight after the window: capped, so progress never runs past the run's share.
    const current = this.runStartedAt === undefined ? 0 : Math.min(this.perRunMs, performance.now() - this.runStartedAt)
    this.onProgress({ doneMs: Math.min(this.totalMs, this.completedMs + current), totalMs: this.totalMs, step: this.step })
  }
}

export interface LoadSetup {
  targets: Map<TargetName, Target>
  farms: Map<TargetName, FarmHandle>
  floor: { child: ChildProcess }
  /** The floor that keeps each packet's record in the farms' single Redis, with that Redis' probe; absent with --no-redis-floor. */
  redisFloor?: { child: ChildProcess; probe: RedisProbe }
  /** The receiver every target forwards to: one of the two ends whose CPU each run counts. */
  receiver: { child: ChildProcess }
  /** ilp-connector's process; absent with --no-connector. */
  connector?: { child: ChildProcess; output: () => string }
  packets: PacketFactory
}

/** Every concurrency × run × target; undefined when interrupted. */
export async function load(opts: BenchOptions, setup: LoadSetup, progress: LoadProgress, ctx: RunContext): Promise<LevelResult[] | undefined> {
  const names = [...setup.targets.keys()]
  const nameWidth = Math.max(8, ...names.map((n) => n.length))
  const levels: LevelResult[] = []
  for (const concurrency of opts.concurrency) {
    const runs = new Map<TargetName, RunResult[]>(names.map((n) => [n, []]))
    for (let run = 0; run < opts.runs; run++) {
      // Rotate which target goes first so all see similar conditions.
      const shift = (run + levels.length) % names.length
      const order = [...names.slice(shift), ...names.slice(0, shift)]
      for (const name of order) {
        if (ctx.stopped()) return undefined
        progress.runStarted(`c=${concurrency} run ${run + 1}/${opts.runs} ${name}`)
        const result = await measureRun(name, concurrency, opts, setup, ctx)
        if (ctx.stopped() || result === undefined) return undefined
        progress.runEnded()
        runs.get(name)!.push(result)
        logRun(ctx, concurrency, run, opts.runs, name, result, nameWidth)
      }
    }
    const floorSummary = summarize(runs.get('floor')!)
    const redisFloor = setup.redisFloor ? summarizeRedisFloor(runs.get(REDIS_FLOOR)!, floorSummary) : undefined
    const connector = setup.connector ? summarizeConnector(runs.get(CONNECTOR)!, floorSummary) : undefined
    const farmsOf = (kind: FarmSpec['redis']) =>
      opts.workers.map((workers) => summarizeFarm(workers, runs.get(farmLabel({ workers, redis: kind }))!, floorSummary, connector, redisFloor))
    const farms = farmsOf('single')
    const level: LevelResult = { concurrency, floor: floorSummary, ...(redisFloor ? { redisFloor } : {}), ...(connector ? { connector } : {}), farms }
    const targets = levelTargets(level)
    if (targets) level.targets = targets
    if (opts.redis.includes('cluster')) {
      const replicas = opts.clusterReplicas > 0
      level.cluster = summarizeCluster(farms, {
        mastersOnly: farmsOf('cluster'),
        replicated: replicas ? farmsOf('cluster-replicated') : [],
        replica: replicas ? farmsOf('cluster-replica') : [],
      })
    }
    levels.push(level)
  }
  return levels
}

/** One run against one target, with its CPU time and (farms, the redis floor) Redis command counts. */
async function measureRun(name: TargetName, concurrency: number, opts: BenchOptions, setup: LoadSetup, ctx: RunContext): Promise<RunResult | undefined> {
  const farm = setup.farms.get(name)
  if (farm && exited(farm.child)) throw new Error(`a farm exited during the bench:\n${farm.output()}`)
  const connector = name === CONNECTOR ? setup.connector! : undefined
  if (connector && exited(connector.child)) throw new Error(`ilp-connector exited during the bench:\n${connector.output()}`)
  const redisFloor = name === REDIS_FLOOR ? setup.redisFloor! : undefined
  if (redisFloor && exited(redisFloor.child)) throw new Error(`${REDIS_FLOOR} exited during the bench`)
  // only the target under load uses Redis meanwhile: its commands and CPU are this target's
  const probe = farm?.probe ?? redisFloor?.probe
  const before = probe ? await probe.commandStats() : undefined
  // the farm's workers are its supervisor's children; the floors and ilp-connector are each one process
  const hopPids = farm ? childPids(farm.child.pid!) : [(connector ?? redisFloor ?? setup.floor).child.pid!]
  const hopCpuBefore = cpuOf(hopPids)
  const endsCpuBefore = endsCpu(setup)
  const redisCpuBefore = probe?.cpu()
  const result = await drive(setup.targets.get(name)!, setup.packets, concurrency, opts.warmupMs, opts.durationMs, ctx.stopped)
  if (ctx.stopped()) return undefined
  const hopCpuAfter = cpuOf(hopPids)
  const endsCpuAfter = endsCpu(setup)
  const redisCpuAfter = probe?.cpu()
  const perPacket = (from: number | undefined, to: number | undefined) =>
    from !== undefined && to !== undefined && result.fulfilledTotal > 0 ? (to - from) / result.fulfilledTotal : undefined
  const hop = perPacket(hopCpuBefore, hopCpuAfter)
  if (hop !== undefined) result.hopCpuUsPerPacket = hop
  const ends = perPacket(endsCpuBefore, endsCpuAfter)
  if (ends !== undefined) result.endsCpuUsPerPacket = ends
  if (probe && before) {
    result.redisCommands = commandDelta(before, await probe.commandStats())
    const masters = perPacket(redisCpuBefore?.masters, redisCpuAfter?.masters)
    if (masters !== undefined) result.redisCpuUsPerPacket = masters
    const replicas = perPacket(redisCpuBefore?.replicas, redisCpuAfter?.replicas)
    if (replicas !== undefined) result.redisReplicaCpuUsPerPacket = replicas
  }
  return result
}

/** CPU µs so far of the load generator (this process: the lanes, its HTTP client) and the receiver. */
function endsCpu(setup: LoadSetup): number | undefined {
  const receiver = cpuOf([setup.receiver.child.pid!])
  if (receiver === undefined) return undefined
  const own = process.cpuUsage()
  return receiver + own.user + own.system
}

function logRun(ctx: RunContext, concurrency: number, run: number, runs: number, name: TargetName, result: RunResult, nameWidth: number): void {
  const bad = Object.entries(result.nonFulfill)
  ctx.log(
    `  c=${String(concurrency).padStart(3)} run ${run + 1}/${runs} ${name.padEnd(nameWidth)} ` +
      `${fmt(result.pps).padStart(6)} pkt/s  p50 ${fmt(result.p50Ms, 2)} ms  p99 ${fmt(result.p99Ms, 2)} ms` +
      `  cpu ${fmt(result.hopCpuUsPerPacket ?? NaN)} us/pkt` +
      `  ends ${fmt(result.endsCpuUsPerPacket ?? NaN)} us/pkt` +
      (bad.length > 0 ? `  non-fulfill: ${bad.map(([k, v]) => `${k} x${v}`).join(', ')}` : ''),
  )
}
