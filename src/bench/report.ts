/**
 * What the bench reports: each target's runs summarized by their medians,
 * the farms against the floor and ilp-connector (and, on a cluster, against
 * the single Redis), the one-worker farm against its targets, and the
 * output: the tables, the lines that explain them, the summary lines and
 * the `--json` document.
 */
import { availableParallelism } from 'node:os'
import type { RunResult } from './drive.js'
import { CLUSTER_MASTERS, farmLabel, workersLabel } from './farms.js'
import type { BenchOptions } from './options.js'
import { AMOUNT, DESTINATION, EXPIRY_MS } from './packets.js'

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])

/** ilp-connector's name as a target: in the runs, the logs and the tables. */
export const CONNECTOR = 'ilp-connector'
/** The redis floor's name as a target: the floor that keeps a record of each packet in Redis (roles.ts). */
export const REDIS_FLOOR = 'floor+redis'

/** What a one-worker farm is held to, each against a baseline measured in the same run. */
export const TARGETS = {
  /** farm pkt/s / floor pkt/s, at least */
  vsFloor: 0.8,
  /** farm pkt/s / ilp-connector pkt/s, at least */
  vsConnector: 3,
  /** farm p99 / floor p99, at most */
  p99VsFloor: 1.5,
} as const

// -- aggregation

export function median(values: number[]): number {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (finite.length === 0) return NaN
  const mid = finite.length >> 1
  return finite.length % 2 === 1 ? finite[mid]! : (finite[mid - 1]! + finite[mid]!) / 2
}

function sumCounts(records: Record<string, number>[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v
  return out
}

export interface TargetSummary {
  pps: number
  /** Median CPU µs per fulfilled packet of the forwarding process(es). */
  cpuUsPerPacket: number
  /** Median CPU µs per fulfilled packet of the load generator and the receiver (RunResult.endsCpuUsPerPacket). */
  endsCpuUsPerPacket: number
  p50Ms: number
  p99Ms: number
  nonFulfill: number
  nonFulfillByReason: Record<string, number>
  runs: RunResult[]
}

export interface FarmRedis {
  /** Median redis-server CPU µs per fulfilled packet. */
  cpuUsPerPacket: number
  /** evalsha + eval + fcall calls per fulfilled packet: Redis round trips. */
  scriptCallsPerPacket: number
  /** Every command per fulfilled packet, including those run inside the scripts. */
  commandsPerPacket: number
  /** Per command, per fulfilled packet, over all runs of this level. */
  breakdownPerPacket: Record<string, number>
}

/**
 * The floor that also writes each packet's record to Redis and deletes it
 * once answered: the least a ledger in Redis costs, to set the farm against.
 */
export interface RedisFloorResult extends TargetSummary {
  redis: FarmRedis
  /** median pps / median floor pps */
  ratio: number
  /** pps / floor pps, run by run (see byRun) */
  ratioByRun: number[]
}

/** ilp-connector, the reference connector, between the same sender and receiver. */
export interface ConnectorResult extends TargetSummary {
  /** median ilp-connector pps / median floor pps */
  ratio: number
  /** pps / floor pps, run by run (see byRun) */
  ratioByRun: number[]
}

export interface FarmResult extends TargetSummary {
  workers: number
  redis: FarmRedis
  /** median farm pps / median floor pps */
  ratio: number
  /** median farm pps / median ilp-connector pps; null when ilp-connector is not measured (--no-connector) */
  vsConnector: number | null
  /** median farm pps / median floor+redis pps; null when it is not measured (--no-redis-floor) */
  vsRedisFloor: number | null
  /** The same ratios run by run (see byRun); null where the baseline is not measured. */
  byRun: { vsFloor: number[]; vsRedisFloor: number[] | null; vsConnector: number[] | null }
}

/** A farm on a local Redis Cluster, against the single-Redis farm of its size measured in the same run. */
export interface ClusterFarmResult extends FarmResult {
  /** false: the cluster of masters only; true: the one whose masters have a replica each */
  replicated: boolean
  durability: 'none' | 'replica'
  /** Median CPU µs per fulfilled packet of the cluster's replicas (redis.cpuUsPerPacket is its masters'). */
  replicaCpuUsPerPacket: number
  /** median pps / the single-Redis farm's median pps, same workers */
  vsSingle: number
  /** The same, run by run (see byRun) */
  vsSingleByRun: number[]
  /** durability replica: median pps / the replicated cluster's durability-none farm's; null for none */
  vsNone: number | null
  /** Packets answered with anything but a Fulfill, % of all answered (warm-up included). */
  nonFulfillPct: number
}

/** One target: the value measured, the bound, and whether the value is within it. */
export interface TargetCheck {
  value: number
  target: number
  meets: boolean
}

/** The one-worker farm at one concurrency against TARGETS. */
export interface LevelTargets {
  workers: 1
  vsFloor: TargetCheck
  /** null when ilp-connector is not measured (--no-connector) */
  vsConnector: TargetCheck | null
  p99VsFloor: TargetCheck
  /** Non-fulfilled % of all answered packets, per target of the comparison (redisFloor, connector null when not measured). */
  nonFulfilledPct: { floor: number; redisFloor: number | null; connector: number | null; farm: number }
  /** No packet to any of them was answered with anything but a Fulfill. */
  allFulfilled: boolean
  /** Every check meets, and allFulfilled; false when ilp-connector is not measured, as that target cannot be shown met. */
  meets: boolean
}

export interface LevelResult {
  concurrency: number
  floor: TargetSummary
  /** absent with --no-redis-floor */
  redisFloor?: RedisFloorResult
  /** absent with --no-connector */
  connector?: ConnectorResult
  farms: FarmResult[]
  /** absent when no one-worker farm is measured */
  targets?: LevelTargets
  /** --redis cluster: per farm size, masters only, then (with replicas) durability none and replica. */
  cluster?: ClusterFarmResult[]
}

export function summarize(runs: RunResult[]): TargetSummary {
  const byReason = sumCounts(runs.map((r) => r.nonFulfill))
  return {
    pps: median(runs.map((r) => r.pps)),
    cpuUsPerPacket: median(runs.map((r) => r.hopCpuUsPerPacket ?? NaN)),
    endsCpuUsPerPacket: median(runs.map((r) => r.endsCpuUsPerPacket ?? NaN)),
    p50Ms: median(runs.map((r) => r.p50Ms)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    nonFulfill: Object.values(byReason).reduce((a, b) => a + b, 0),
    nonFulfillByReason: byReason,
    runs,
  }
}

/** Non-fulfilled share of every answered packet over a target's runs, in %. */
export function nonFulfillPct(t: TargetSummary): number {
  const answered = t.runs.reduce((a, r) => a + r.fulfilledTotal, 0) + t.nonFulfill
  return answered > 0 ? (100 * t.nonFulfill) / answered : NaN
}

/** A level's cluster farms, per farm size (same index as the single-Redis farms); the replicated ones are empty with --cluster-replicas 0. */
export interface ClusterFarms {
  mastersOnly: FarmResult[]
  replicated: FarmResult[]
  replica: FarmResult[]
}

/** The cluster farms of a level, each against the single-Redis farm of the same size (same index). */
export function summarizeCluster(single: FarmResult[], farms: ClusterFarms): ClusterFarmResult[] {
  const row = (f: FarmResult, i: number, replicated: boolean, durability: 'none' | 'replica'): ClusterFarmResult => ({
    ...f,
    replicated,
    durability,
    replicaCpuUsPerPacket: median(f.runs.map((r) => r.redisReplicaCpuUsPerPacket ?? NaN)),
    vsSingle: f.pps / single[i]!.pps,
    vsSingleByRun: byRun(f.runs, single[i]!),
    vsNone: durability === 'replica' ? f.pps / farms.replicated[i]!.pps : null,
    nonFulfillPct: nonFulfillPct(f),
  })
  return farms.mastersOnly.flatMap((f, i) => [
    row(f, i, false, 'none'),
    ...(farms.replicated[i] ? [row(farms.replicated[i], i, true, 'none')] : []),
    ...(farms.replica[i] ? [row(farms.replica[i], i, true, 'replica')] : []),
  ])
}

/**
 * A target's pps over a baseline's, run by run: the targets of one run are
 * measured back to back, so a machine whose speed drifts between runs moves
 * both alike. The medians' ratio can pair runs minutes apart.
 */
export function byRun(runs: RunResult[], base: TargetSummary): number[] {
  return runs.map((r, i) => r.pps / (base.runs[i]?.pps ?? NaN))
}

export function summarizeConnector(runs: RunResult[], floor: TargetSummary): ConnectorResult {
  const summary = summarize(runs)
  return { ...summary, ratio: summary.pps / floor.pps, ratioByRun: byRun(runs, floor) }
}

/** The Redis calls of a target's runs, per fulfilled packet, and its Redis' median CPU per packet. */
function redisOf(runs: RunResult[]): FarmRedis {
  const fulfilled = runs.reduce((a, r) => a + r.fulfilledTotal, 0)
  const perPacket = (calls: number) => (fulfilled > 0 ? calls / fulfilled : NaN)
  const total = sumCounts(runs.map((r) => r.redisCommands ?? {}))
  const breakdownPerPacket: Record<string, number> = {}
  for (const [name, calls] of Object.entries(total).sort((a, b) => b[1] - a[1])) {
    breakdownPerPacket[name] = Number(perPacket(calls).toFixed(3))
  }
  const scriptCalls = Object.entries(total).reduce((a, [name, calls]) => a + (SCRIPT_COMMANDS.has(name) ? calls : 0), 0)
  const allCalls = Object.values(total).reduce((a, b) => a + b, 0)
  return {
    cpuUsPerPacket: median(runs.map((r) => r.redisCpuUsPerPacket ?? NaN)),
    scriptCallsPerPacket: perPacket(scriptCalls),
    commandsPerPacket: perPacket(allCalls),
    breakdownPerPacket,
  }
}

export function summarizeRedisFloor(runs: RunResult[], floor: TargetSummary): RedisFloorResult {
  const summary = summarize(runs)
  return { ...summary, redis: redisOf(runs), ratio: summary.pps / floor.pps, ratioByRun: byRun(runs, floor) }
}

export function summarizeFarm(
  workers: number,
  runs: RunResult[],
  floor: TargetSummary,
  connector: TargetSummary | undefined,
  redisFloor: TargetSummary | undefined,
): FarmResult {
  const summary = summarize(runs)
  return {
    ...summary,
    workers,
    redis: redisOf(runs),
    ratio: summary.pps / floor.pps,
    vsConnector: connector ? summary.pps / connector.pps : null,
    vsRedisFloor: redisFloor ? summary.pps / redisFloor.pps : null,
    byRun: {
      vsFloor: byRun(runs, floor),
      vsRedisFloor: redisFloor ? byRun(runs, redisFloor) : null,
      vsConnector: connector ? byRun(runs, connector) : null,
    },
  }
}

/** The one-worker farm of a level against TARGETS; undefined without one. */
export function levelTargets(l: LevelResult): LevelTargets | undefined {
  const one = l.farms.find((f) => f.workers === 1)
  if (!one) return undefined
  const atLeast = (value: number, target: number): TargetCheck => ({ value, target, meets: value >= target })
  const atMost = (value: number, target: number): TargetCheck => ({ value, target, meets: value <= target })
  const vsFloor = atLeast(one.ratio, TARGETS.vsFloor)
  const vsConnector = one.vsConnector === null ? null : atLeast(one.vsConnector, TARGETS.vsConnector)
  const p99VsFloor = atMost(one.p99Ms / l.floor.p99Ms, TARGETS.p99VsFloor)
  const nonFulfilled = {
    floor: nonFulfillPct(l.floor),
    redisFloor: l.redisFloor ? nonFulfillPct(l.redisFloor) : null,
    connector: l.connector ? nonFulfillPct(l.connector) : null,
    farm: nonFulfillPct(one),
  }
  const allFulfilled = l.floor.nonFulfill === 0 && one.nonFulfill === 0 && (l.connector?.nonFulfill ?? 0) === 0 && (l.redisFloor?.nonFulfill ?? 0) === 0
  return {
    workers: 1,
    vsFloor,
    vsConnector,
    p99VsFloor,
    nonFulfilledPct: nonFulfilled,
    allFulfilled,
    meets: vsFloor.meets && vsConnector !== null && vsConnector.meets && p99VsFloor.meets && allFulfilled,
  }
}

// -- output

/** A number for the tables and logs: fixed digits, n/a for NaN. */
export const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')

/** Renders the results table from a header and rows; `ilp-farm bench` passes a cli-table3 one. */
export type TableRenderer = (head: string[], rows: string[][]) => string

/**
 * The results table's cells: for each concurrency, one row for the floor,
 * one for the floor with Redis, one for ilp-connector, then one per farm size. The vs ilp-connector column
 * is there only when ilp-connector was measured.
 */
export function levelRows(levels: LevelResult[]): { head: string[]; rows: string[][] } {
  const withConnector = levels.some((l) => l.connector)
  const vsConnector = (cell: string) => (withConnector ? [cell] : [])
  const head = ['conc', 'target', 'pkt/s', 'vs floor', ...vsConnector(`vs ${CONNECTOR}`), 'p50', 'p99', 'cpu/pkt', 'redis cpu/pkt', 'non-fulfill', 'redis RT/pkt', 'redis cmds/pkt']
  const rows: string[][] = []
  const latencies = (t: TargetSummary) => [`${fmt(t.p50Ms, 2)} ms`, `${fmt(t.p99Ms, 2)} ms`, `${fmt(t.cpuUsPerPacket)} us`]
  for (const l of levels) {
    rows.push([String(l.concurrency), 'floor', fmt(l.floor.pps), '', ...vsConnector(''), ...latencies(l.floor), '', String(l.floor.nonFulfill), '', ''])
    if (l.redisFloor) {
      const r = l.redisFloor
      // RT/pkt counts script calls: it makes none
      rows.push(['', REDIS_FLOOR, fmt(r.pps), fmt(r.ratio, 2), ...vsConnector(''), ...latencies(r), `${fmt(r.redis.cpuUsPerPacket)} us`,
        String(r.nonFulfill), '', fmt(r.redis.commandsPerPacket, 2)])
    }
    if (l.connector) {
      const c = l.connector
      rows.push(['', CONNECTOR, fmt(c.pps), fmt(c.ratio, 2), ...vsConnector(''), ...latencies(c), '', String(c.nonFulfill), '', ''])
    }
    for (const f of l.farms) {
      rows.push(['', workersLabel(f.workers), fmt(f.pps), fmt(f.ratio, 2), ...vsConnector(f.vsConnector === null ? '' : fmt(f.vsConnector, 2)),
        ...latencies(f), `${fmt(f.redis.cpuUsPerPacket)} us`, String(f.nonFulfill),
        fmt(f.redis.scriptCallsPerPacket, 2), fmt(f.redis.commandsPerPacket, 2)])
    }
  }
  return { head, rows }
}

const clusterLabel = (c: ClusterFarmResult) =>
  farmLabel({ workers: c.workers, redis: !c.replicated ? 'cluster' : c.durability === 'none' ? 'cluster-replicated' : 'cluster-replica' })

/**
 * The Redis Cluster table (--redis cluster): per concurrency and farm size,
 * the single-Redis farm, then the same farm on the cluster of masters only
 * and on the one with replicas, durability none and replica, all from the
 * same run.
 */
export function clusterTableRows(levels: LevelResult[]): { head: string[]; rows: string[][] } {
  const head = ['conc', 'target', 'pkt/s', 'vs single', 'vs none', 'p50', 'p99', 'redis RT/pkt', 'cmds/pkt', 'redis cpu/pkt', 'replicas cpu/pkt', 'non-fulfill %']
  const rows: string[][] = []
  const ms = (n: number) => `${fmt(n, 2)} ms`
  const pct = (n: number) => `${fmt(n, 2)}%`
  for (const l of levels) {
    if (!l.cluster) continue
    l.farms.forEach((single, i) => {
      rows.push([i === 0 ? String(l.concurrency) : '', workersLabel(single.workers), fmt(single.pps), '', '', ms(single.p50Ms), ms(single.p99Ms),
        fmt(single.redis.scriptCallsPerPacket, 2), fmt(single.redis.commandsPerPacket, 2), `${fmt(single.redis.cpuUsPerPacket)} us`, '', pct(nonFulfillPct(single))])
      for (const c of l.cluster!.filter((f) => f.workers === single.workers)) {
        rows.push(['', clusterLabel(c), fmt(c.pps), fmt(c.vsSingle, 2), c.vsNone === null ? '' : fmt(c.vsNone, 2),
          ms(c.p50Ms), ms(c.p99Ms), fmt(c.redis.scriptCallsPerPacket, 2), fmt(c.redis.commandsPerPacket, 2), `${fmt(c.redis.cpuUsPerPacket)} us`,
          `${fmt(c.replicaCpuUsPerPacket)} us`, pct(c.nonFulfillPct)])
      }
    })
  }
  return { head, rows }
}

/** The script's table: padded columns, the first two left-aligned. */
const plainTable: TableRenderer = (head, rows) => {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => (i <= 1 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n')
}

function summaryLevel(levels: LevelResult[]): LevelResult {
  return levels.reduce((best, l) => (Math.abs(l.concurrency - 50) < Math.abs(best.concurrency - 50) ? l : best))
}

/** What the cluster summary says: the headline level's farm of 1 worker (else the smallest) on the cluster against the single Redis. */
export interface ClusterSummary {
  concurrency: number
  workers: number
  singlePps: number
  clusterPps: number
  /** cluster pps / single pps: the cluster of masters only, like for like with the single Redis, which has no replica either */
  ratio: number
  /** The same ratio run by run (each run's farms measured back to back) */
  ratioByRun: number[]
  /** fcall/evalsha/eval calls per fulfilled packet, summed over the cluster's masters */
  roundTripsPerPacket: number
  singleRoundTripsPerPacket: number
  /** The replicated cluster's farm, durability none, and its pps / the single farm's; null with --cluster-replicas 0 */
  replicatedPps: number | null
  replicatedRatio: number | null
  /** The durability replica farm; null with --cluster-replicas 0 */
  replicaPps: number | null
  /** What durability replica costs: 1 - replica pps / replicated none pps, in %; null without it */
  replicaCostPct: number | null
  p99Ms: { single: number; cluster: number; replicated: number | null; replica: number | null }
  /** Replicas per master of the replicated cluster (0: none measured) */
  replicasPerMaster: number
  /** ratio >= 0.9, round trips <= 2, every packet fulfilled */
  meetsGoal: boolean
}

function clusterSummary(l: LevelResult, replicasPerMaster: number): ClusterSummary | undefined {
  if (!l.cluster || l.farms.length === 0) return undefined
  const single = l.farms.find((f) => f.workers === 1) ?? l.farms.reduce((a, b) => (b.workers < a.workers ? b : a))
  const ofSize = l.cluster.filter((c) => c.workers === single.workers)
  const none = ofSize.find((c) => !c.replicated)
  const replicated = ofSize.find((c) => c.replicated && c.durability === 'none')
  const replica = ofSize.find((c) => c.durability === 'replica')
  if (!none) return undefined
  return {
    concurrency: l.concurrency,
    workers: single.workers,
    singlePps: single.pps,
    clusterPps: none.pps,
    ratio: none.vsSingle,
    ratioByRun: none.vsSingleByRun,
    roundTripsPerPacket: none.redis.scriptCallsPerPacket,
    singleRoundTripsPerPacket: single.redis.scriptCallsPerPacket,
    replicatedPps: replicated ? replicated.pps : null,
    replicatedRatio: replicated ? replicated.vsSingle : null,
    replicaPps: replica ? replica.pps : null,
    replicaCostPct: replica ? 100 * (1 - replica.vsNone!) : null,
    p99Ms: { single: single.p99Ms, cluster: none.p99Ms, replicated: replicated ? replicated.p99Ms : null, replica: replica ? replica.p99Ms : null },
    replicasPerMaster,
    meetsGoal: none.vsSingle >= 0.9 && none.redis.scriptCallsPerPacket <= 2 && none.nonFulfill === 0,
  }
}

function clusterSummaryLine(c: ClusterSummary): string {
  return (
    `cluster summary: cluster/single ${fmt(c.ratio, 2)} at c=${c.concurrency}, ${c.workers} worker${c.workers === 1 ? '' : 's'} (goal >= 0.9` +
    `${c.ratioByRun.length > 1 ? `; by run ${c.ratioByRun.map((r) => fmt(r, 2)).join(' ')}` : ''}); ` +
    `${fmt(c.roundTripsPerPacket, 2)} Redis round trips per fulfilled packet (goal <= 2; single ${fmt(c.singleRoundTripsPerPacket, 2)}); ` +
    (c.replicaCostPct === null
      ? 'masters only (--cluster-replicas 0): durability replica not measured'
      : `with ${c.replicasPerMaster} replica per master on these same cores, cluster+r/single ${fmt(c.replicatedRatio!, 2)}, ` +
        `and durability replica costs ${fmt(c.replicaCostPct, 1)}% pkt/s (p99 ${fmt(c.p99Ms.replicated!, 2)} -> ${fmt(c.p99Ms.replica!, 2)} ms)`) +
    ` -> the cluster ${c.meetsGoal ? 'MEETS' : 'is BELOW'} the goal`
  )
}

const mark = (c: TargetCheck) => (c.meets ? 'MEETS' : 'BELOW')

/** The one-worker farm's targets, each marked: `farm/floor 0.83 MEETS (target >= 0.8), ...`. */
function targetsText(t: LevelTargets): string {
  const pct = (name: string, n: number | null) => (n === null ? [] : [`${name} ${n === 0 ? '0' : fmt(n, 2)}%`])
  const { floor, redisFloor, connector, farm } = t.nonFulfilledPct
  const nonFulfilled = [...pct('floor', floor), ...pct(REDIS_FLOOR, redisFloor), ...pct(CONNECTOR, connector), ...pct(workersLabel(t.workers), farm)]
  return [
    `farm/floor ${fmt(t.vsFloor.value, 2)} ${mark(t.vsFloor)} (target >= ${t.vsFloor.target})`,
    t.vsConnector
      ? `farm/${CONNECTOR} ${fmt(t.vsConnector.value, 2)} ${mark(t.vsConnector)} (target >= ${t.vsConnector.target})`
      : `farm/${CONNECTOR} not measured (--no-connector)`,
    `p99 farm/floor ${fmt(t.p99VsFloor.value, 2)} ${mark(t.p99VsFloor)} (target <= ${t.p99VsFloor.target})`,
    `non-fulfilled ${nonFulfilled.join(' ')} ${t.allFulfilled ? 'MEETS' : 'BELOW'} (target 0%)`,
  ].join(', ')
}

/** Whether the one-worker farm meets its targets; said only when all were measured. */
const verdict = (t: LevelTargets) => (t.vsConnector === null ? '' : ` ${t.meets ? 'MEETS' : 'is BELOW'} the targets`)

/** One concurrency's line: the baselines, each farm against both, and the one-worker farm's targets. */
function summaryLine(l: LevelResult): string {
  const one = l.farms.find((f) => f.workers === 1)
  const parts = l.farms.map(
    (f) =>
      `${workersLabel(f.workers)} ${fmt(f.pps)} pkt/s (${fmt(f.ratio, 2)} of floor` +
      `${f.vsRedisFloor === null ? '' : `, ${fmt(f.vsRedisFloor, 2)} of ${REDIS_FLOOR}`}` +
      `${f.vsConnector === null ? '' : `, ${fmt(f.vsConnector, 2)}x ${CONNECTOR}`})`,
  )
  const scaling = l.farms
    .filter((f) => one && f.workers > 1)
    .map((f) => `${f.workers}w/1w x${fmt(f.pps / one!.pps, 2)}`)
  return (
    `summary @${l.concurrency} concurrent: floor ${fmt(l.floor.pps)} pkt/s` +
    (l.redisFloor ? `; ${REDIS_FLOOR} ${fmt(l.redisFloor.pps)} pkt/s (${fmt(l.redisFloor.ratio, 2)} of floor)` : '') +
    (l.connector ? `; ${CONNECTOR} ${fmt(l.connector.pps)} pkt/s` : '') +
    `; ${parts.join('; ')}` +
    (scaling.length > 0 ? `; scaling ${scaling.join(', ')}` : '') +
    (one ? `; ${fmt(one.redis.scriptCallsPerPacket, 2)} Redis round trips/packet (goal <= 2)` : '') +
    (l.targets ? ` -> 1 worker${verdict(l.targets)}: ${targetsText(l.targets)}` : '')
  )
}

/** What a bench measured: the `--json` document (numbers unrounded here; benchJson rounds them). */
export interface BenchReport {
  node: string
  cores: number
  /** ilp-connector's version; null when it is not measured (--no-connector) */
  ilpConnector: string | null
  options: BenchOptions
  packet: { amount: string; destination: string; expiryMs: number }
  levels: LevelResult[]
  /** The level nearest 50 concurrent. */
  summary: {
    concurrency: number
    floorPps: number
    /** null with --no-redis-floor */
    redisFloorPps: number | null
    connectorPps: number | null
    farms: Array<{ workers: number; pps: number; ratio: number; vsRedisFloor: number | null; vsConnector: number | null; cpuUsPerPacket: number }>
    redisRoundTripsPerPacket: number | null
    redisCommandsPerPacket: number | null
    /** The one-worker farm against TARGETS; null without one. */
    targets: LevelTargets | null
    /** targets.meets */
    meetsGoal: boolean
    /** --redis cluster only */
    cluster?: ClusterSummary
  }
}

export function report(opts: BenchOptions, levels: LevelResult[], connectorVersion: string | undefined): BenchReport {
  const headline = summaryLevel(levels)
  const one = headline.farms.find((f) => f.workers === 1)
  const cluster = clusterSummary(headline, opts.clusterReplicas)
  return {
    node: process.version,
    cores: availableParallelism(),
    ilpConnector: opts.connector ? (connectorVersion ?? null) : null,
    options: opts,
    packet: { amount: AMOUNT, destination: DESTINATION, expiryMs: EXPIRY_MS },
    levels,
    summary: {
      concurrency: headline.concurrency,
      floorPps: headline.floor.pps,
      redisFloorPps: headline.redisFloor?.pps ?? null,
      connectorPps: headline.connector?.pps ?? null,
      farms: headline.farms.map((f) => ({
        workers: f.workers,
        pps: f.pps,
        ratio: f.ratio,
        vsRedisFloor: f.vsRedisFloor,
        vsConnector: f.vsConnector,
        cpuUsPerPacket: f.cpuUsPerPacket,
      })),
      redisRoundTripsPerPacket: one?.redis.scriptCallsPerPacket ?? null,
      redisCommandsPerPacket: one?.redis.commandsPerPacket ?? null,
      targets: headline.targets ?? null,
      meetsGoal: headline.targets?.meets ?? false,
      ...(cluster ? { cluster } : {}),
    },
  }
}

/** The `--json` output: the report with fractions rounded to 3 digits (NaN becomes null). */
export function benchJson(r: BenchReport): string {
  const round = (_key: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(3)) : v)
  return `${JSON.stringify(r, round, 2)}\n`
}

/**
 * Each target's share of the machine, per fulfilled packet: its own processes, and the two ends (load
 * generator and receiver), which run on the same cores. The pkt/s ratios follow from these sums: what
 * a target leaves to the ends is what the machine can spend on more packets.
 */
function machineCpuLine(l: LevelResult): string {
  const ends = (t: TargetSummary) => `ends ${fmt(t.endsCpuUsPerPacket)} = ${fmt(t.cpuUsPerPacket + t.endsCpuUsPerPacket)} us`
  const parts = [`floor ${fmt(l.floor.cpuUsPerPacket)} + ${ends(l.floor)}`]
  if (l.redisFloor) {
    const r = l.redisFloor
    parts.push(`${REDIS_FLOOR} ${fmt(r.cpuUsPerPacket)} + redis ${fmt(r.redis.cpuUsPerPacket)} + ends ${fmt(r.endsCpuUsPerPacket)} = ${fmt(r.cpuUsPerPacket + r.redis.cpuUsPerPacket + r.endsCpuUsPerPacket)} us`)
  }
  if (l.connector) parts.push(`${CONNECTOR} ${fmt(l.connector.cpuUsPerPacket)} + ${ends(l.connector)}`)
  for (const f of l.farms) {
    const redis = f.redis.cpuUsPerPacket
    parts.push(
      `farm ${f.workers}w ${fmt(f.cpuUsPerPacket)} + redis ${fmt(redis)} + ends ${fmt(f.endsCpuUsPerPacket)} = ${fmt(f.cpuUsPerPacket + redis + f.endsCpuUsPerPacket)} us`,
    )
  }
  return `machine CPU per fulfilled packet @${l.concurrency} (ends = the load generator and the receiver, on the same cores): ${parts.join('; ')}`
}

/** The one-worker farm's ratios (else the smallest farm's), and floor+redis', run by run. */
function byRunLine(l: LevelResult): string {
  const one = l.farms.find((f) => f.workers === 1) ?? l.farms[0]
  const list = (values: number[]) => values.map((v) => fmt(v, 2)).join(' ')
  const parts: string[] = []
  if (one) {
    const name = workersLabel(one.workers)
    parts.push(`${name}/floor ${list(one.byRun.vsFloor)}`)
    if (one.byRun.vsRedisFloor) parts.push(`${name}/${REDIS_FLOOR} ${list(one.byRun.vsRedisFloor)}`)
    if (one.byRun.vsConnector) parts.push(`${name}/${CONNECTOR} ${list(one.byRun.vsConnector)}`)
  }
  if (l.redisFloor) parts.push(`${REDIS_FLOOR}/floor ${list(l.redisFloor.ratioByRun)}`)
  return `by run @${l.concurrency} (each run's targets measured back to back): ${parts.join('; ')}`
}

/** The human output: the table, what its columns mean, the Redis breakdown, non-fulfill reasons, the summary line. */
export function benchText(r: BenchReport, renderTable: TableRenderer = plainTable): string {
  const { levels, options: opts } = r
  const headline = summaryLevel(levels)
  const one = headline.farms.find((f) => f.workers === 1)
  const { head, rows } = levelRows(levels)
  const lines = [
    '',
    `ilp-farm bench: medians of ${opts.runs} run(s) x ${opts.durationMs / 1000} s per level (node ${r.node}, ${r.cores} cores` +
      `${r.ilpConnector ? `, ${CONNECTOR} ${r.ilpConnector}` : ''}; latencies per packet, end to end)`,
    '',
    renderTable(head, rows),
    '',
    'vs floor = pkt/s / floor pkt/s in the same run; non-fulfill = packets answered with anything but a Fulfill (warm-up included)',
    ...(levels.some((l) => l.redisFloor)
      ? [
          `${REDIS_FLOOR} = the floor that also writes each packet's record to the farm's Redis before forwarding it and deletes it once answered ` +
            '(HSET, HDEL, auto-pipelined; no script, no balance): the least a ledger in Redis costs',
        ]
      : []),
    ...(r.ilpConnector
      ? [`${CONNECTOR} = the reference connector in its own process (in-memory balances, rate limit off); vs ${CONNECTOR} = farm pkt/s / its pkt/s`]
      : []),
    `cpu/pkt = CPU time per fulfilled packet of the target's own process (a farm's: all its workers); redis cpu/pkt = redis-server (Linux /proc)`,
    'redis RT/pkt = fcall/evalsha/eval calls per fulfilled packet; cmds/pkt = every Redis command per fulfilled packet, inside scripts too',
  ]
  if (one) {
    lines.push(
      `redis commands per packet @${headline.concurrency}, 1 worker: ` +
        Object.entries(one.redis.breakdownPerPacket)
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
    )
  }
  lines.push(machineCpuLine(headline))
  if (opts.runs > 1) lines.push(...levels.map(byRunLine))
  const cluster = levels.some((l) => l.cluster)
  if (cluster) {
    const t = clusterTableRows(levels)
    lines.push(
      '',
      `Redis Clusters (local, appendonly everysec on every node: ${CLUSTER_MASTERS} masters` +
        `${r.options.clusterReplicas > 0 ? `; cluster+r: ${CLUSTER_MASTERS} masters x ${r.options.clusterReplicas} replica` : ''}) ` +
        'against the single Redis (appendonly everysec), same load and run:',
      '',
      renderTable(t.head, t.rows),
      '',
      'vs single = cluster pkt/s / single-Redis pkt/s, same farm size; vs none = durability replica pkt/s / cluster+r durability none pkt/s',
      'redis RT/pkt, cmds/pkt and redis cpu/pkt: summed over the cluster\'s masters; replicas cpu/pkt: its replicas\' CPU per fulfilled packet',
      'cluster <n>w = masters only, like for like with the single Redis, which has no replica either: no replica takes CPU from the farm on these cores',
      ...(r.options.clusterReplicas === 0
        ? ['--cluster-replicas 0: no cluster with replicas, so durability replica is not measured']
        : [
            'cluster+r <n>w = masters with a replica each, whose CPU shares these cores with the farm (on hosts of their own it would not); ' +
              'cluster+r <n>w replica = the same with redis.durability replica: each batch also waits for WAIT 1 on its master (not counted in redis RT/pkt; ' +
              `wait/pkt @${headline.concurrency}: ${(headline.cluster ?? []).filter((c) => c.durability === 'replica').map((c) => `${c.workers}w ${fmt(c.redis.breakdownPerPacket.wait ?? 0, 2)}`).join(', ')})`,
          ]),
    )
  }
  const reasons = levels.flatMap((l) => [
    ...Object.entries(l.floor.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} floor: ${k} x${v}`),
    ...Object.entries(l.redisFloor?.nonFulfillByReason ?? {}).map(([k, v]) => `  c=${l.concurrency} ${REDIS_FLOOR}: ${k} x${v}`),
    ...Object.entries(l.connector?.nonFulfillByReason ?? {}).map(([k, v]) => `  c=${l.concurrency} ${CONNECTOR}: ${k} x${v}`),
    ...l.farms.flatMap((f) => Object.entries(f.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} ${workersLabel(f.workers)}: ${k} x${v}`)),
    ...(l.cluster ?? []).flatMap((f) => Object.entries(f.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} ${clusterLabel(f)}: ${k} x${v}`)),
  ])
  if (reasons.length > 0) lines.push('non-fulfill reasons:', ...reasons)
  // one line per concurrency: the targets hold at each measured level, not only the headline one
  lines.push('', ...levels.map(summaryLine))
  if (r.summary.cluster) lines.push(clusterSummaryLine(r.summary.cluster))
  return `${lines.join('\n')}\n`
}
