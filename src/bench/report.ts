/**
 * What the bench reports: each target's runs summarized by their medians,
 * the farms against the floor (and, on a cluster, against the single Redis),
 * and the output: the tables, the lines that explain them, the summary
 * lines and the `--json` document.
 */
import { availableParallelism } from 'node:os'
import type { RunResult } from './drive.js'
import { CLUSTER_MASTERS, CLUSTER_REPLICAS_PER_MASTER, farmLabel, workersLabel } from './farms.js'
import type { BenchOptions } from './options.js'
import { AMOUNT, DESTINATION, EXPIRY_MS } from './packets.js'

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])

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

export interface FarmResult extends TargetSummary {
  workers: number
  redis: FarmRedis
  /** median farm pps / median floor pps */
  ratio: number
}

/** A farm on the local Redis Cluster, against the single-Redis farm of its size measured in the same run. */
export interface ClusterFarmResult extends FarmResult {
  durability: 'none' | 'replica'
  /** Median CPU µs per fulfilled packet of the cluster's replicas (redis.cpuUsPerPacket is its masters'). */
  replicaCpuUsPerPacket: number
  /** median pps / the single-Redis farm's median pps, same workers */
  vsSingle: number
  /** durability replica: median pps / the cluster's durability-none farm's; null for none */
  vsNone: number | null
  /** Packets answered with anything but a Fulfill, % of all answered (warm-up included). */
  nonFulfillPct: number
}

export interface LevelResult {
  concurrency: number
  floor: TargetSummary
  farms: FarmResult[]
  /** --redis cluster: per farm size, durability none then replica. */
  cluster?: ClusterFarmResult[]
}

export function summarize(runs: RunResult[]): TargetSummary {
  const byReason = sumCounts(runs.map((r) => r.nonFulfill))
  return {
    pps: median(runs.map((r) => r.pps)),
    cpuUsPerPacket: median(runs.map((r) => r.hopCpuUsPerPacket ?? NaN)),
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

/** The cluster farms of a level, each against the single-Redis farm of the same size (same index). */
export function summarizeCluster(single: FarmResult[], none: FarmResult[], replica: FarmResult[]): ClusterFarmResult[] {
  const row = (f: FarmResult, i: number, durability: 'none' | 'replica'): ClusterFarmResult => ({
    ...f,
    durability,
    replicaCpuUsPerPacket: median(f.runs.map((r) => r.redisReplicaCpuUsPerPacket ?? NaN)),
    vsSingle: f.pps / single[i]!.pps,
    vsNone: durability === 'replica' ? f.pps / none[i]!.pps : null,
    nonFulfillPct: nonFulfillPct(f),
  })
  return none.flatMap((f, i) => [row(f, i, 'none'), row(replica[i]!, i, 'replica')])
}

export function summarizeFarm(workers: number, runs: RunResult[], floor: TargetSummary): FarmResult {
  const fulfilled = runs.reduce((a, r) => a + r.fulfilledTotal, 0)
  const perPacket = (calls: number) => (fulfilled > 0 ? calls / fulfilled : NaN)
  const total = sumCounts(runs.map((r) => r.redisCommands ?? {}))
  const breakdownPerPacket: Record<string, number> = {}
  for (const [name, calls] of Object.entries(total).sort((a, b) => b[1] - a[1])) {
    breakdownPerPacket[name] = Number(perPacket(calls).toFixed(3))
  }
  const scriptCalls = Object.entries(total).reduce((a, [name, calls]) => a + (SCRIPT_COMMANDS.has(name) ? calls : 0), 0)
  const allCalls = Object.values(total).reduce((a, b) => a + b, 0)
  const summary = summarize(runs)
  return {
    ...summary,
    workers,
    redis: {
      cpuUsPerPacket: median(runs.map((r) => r.redisCpuUsPerPacket ?? NaN)),
      scriptCallsPerPacket: perPacket(scriptCalls),
      commandsPerPacket: perPacket(allCalls),
      breakdownPerPacket,
    },
    ratio: summary.pps / floor.pps,
  }
}

// -- output

/** A number for the tables and logs: fixed digits, n/a for NaN. */
export const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')

/** Renders the results table from a header and rows; `ilp-farm bench` passes a cli-table3 one. */
export type TableRenderer = (head: string[], rows: string[][]) => string

/** The results table's cells: one row for the floor, then one per farm size, for each concurrency. */
export function levelRows(levels: LevelResult[]): { head: string[]; rows: string[][] } {
  const head = ['conc', 'target', 'pkt/s', 'vs floor', 'p50', 'p99', 'cpu/pkt', 'redis cpu/pkt', 'non-fulfill', 'redis RT/pkt', 'redis cmds/pkt']
  const rows: string[][] = []
  for (const l of levels) {
    rows.push([String(l.concurrency), 'floor', fmt(l.floor.pps), '', `${fmt(l.floor.p50Ms, 2)} ms`, `${fmt(l.floor.p99Ms, 2)} ms`,
      `${fmt(l.floor.cpuUsPerPacket)} us`, '', String(l.floor.nonFulfill), '', ''])
    for (const f of l.farms) {
      rows.push(['', workersLabel(f.workers), fmt(f.pps), fmt(f.ratio, 2), `${fmt(f.p50Ms, 2)} ms`, `${fmt(f.p99Ms, 2)} ms`,
        `${fmt(f.cpuUsPerPacket)} us`, `${fmt(f.redis.cpuUsPerPacket)} us`, String(f.nonFulfill),
        fmt(f.redis.scriptCallsPerPacket, 2), fmt(f.redis.commandsPerPacket, 2)])
    }
  }
  return { head, rows }
}

const clusterLabel = (c: ClusterFarmResult) => farmLabel({ workers: c.workers, redis: c.durability === 'none' ? 'cluster' : 'cluster-replica' })

/**
 * The Redis Cluster table (--redis cluster): per concurrency and farm size,
 * the single-Redis farm, then the same farm on the cluster with durability
 * none and replica, all from the same run.
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

function meetsGoal(l: LevelResult): boolean {
  const one = l.farms.find((f) => f.workers === 1)
  return one !== undefined && one.ratio >= 0.6 && one.redis.scriptCallsPerPacket <= 2 && one.nonFulfill === 0 && l.floor.nonFulfill === 0
}

/** What the cluster summary says: the headline level's farm of 1 worker (else the smallest) on the cluster against the single Redis. */
export interface ClusterSummary {
  concurrency: number
  workers: number
  singlePps: number
  clusterPps: number
  /** cluster pps / single pps */
  ratio: number
  /** fcall/evalsha/eval calls per fulfilled packet, summed over the cluster's masters */
  roundTripsPerPacket: number
  singleRoundTripsPerPacket: number
  replicaPps: number
  /** What durability replica costs: 1 - replica pps / none pps, in % */
  replicaCostPct: number
  p99Ms: { single: number; cluster: number; replica: number }
  /** ratio >= 0.9, round trips <= 2, every packet fulfilled */
  meetsGoal: boolean
}

function clusterSummary(l: LevelResult): ClusterSummary | undefined {
  if (!l.cluster || l.farms.length === 0) return undefined
  const single = l.farms.find((f) => f.workers === 1) ?? l.farms.reduce((a, b) => (b.workers < a.workers ? b : a))
  const none = l.cluster.find((c) => c.workers === single.workers && c.durability === 'none')
  const replica = l.cluster.find((c) => c.workers === single.workers && c.durability === 'replica')
  if (!none || !replica) return undefined
  return {
    concurrency: l.concurrency,
    workers: single.workers,
    singlePps: single.pps,
    clusterPps: none.pps,
    ratio: none.vsSingle,
    roundTripsPerPacket: none.redis.scriptCallsPerPacket,
    singleRoundTripsPerPacket: single.redis.scriptCallsPerPacket,
    replicaPps: replica.pps,
    replicaCostPct: 100 * (1 - replica.vsNone!),
    p99Ms: { single: single.p99Ms, cluster: none.p99Ms, replica: replica.p99Ms },
    meetsGoal: none.vsSingle >= 0.9 && none.redis.scriptCallsPerPacket <= 2 && none.nonFulfill === 0,
  }
}

function clusterSummaryLine(c: ClusterSummary): string {
  return (
    `cluster summary: cluster/single ${fmt(c.ratio, 2)} at c=${c.concurrency}, ${c.workers} worker${c.workers === 1 ? '' : 's'} (goal >= 0.9); ` +
    `${fmt(c.roundTripsPerPacket, 2)} Redis round trips per fulfilled packet (goal <= 2; single ${fmt(c.singleRoundTripsPerPacket, 2)}); ` +
    `durability replica costs ${fmt(c.replicaCostPct, 1)}% pkt/s (p99 ${fmt(c.p99Ms.cluster, 2)} -> ${fmt(c.p99Ms.replica, 2)} ms)` +
    ` -> the cluster ${c.meetsGoal ? 'MEETS' : 'is BELOW'} the goal`
  )
}

function summaryLine(l: LevelResult): string {
  const one = l.farms.find((f) => f.workers === 1)
  const parts = l.farms.map((f) => `${workersLabel(f.workers)} ${fmt(f.pps)} pkt/s (${fmt(f.ratio, 2)} of floor)`)
  const scaling = l.farms
    .filter((f) => one && f.workers > 1)
    .map((f) => `${f.workers}w/1w x${fmt(f.pps / one!.pps, 2)}`)
  return (
    `summary @${l.concurrency} concurrent: floor ${fmt(l.floor.pps)} pkt/s; ${parts.join('; ')}` +
    (scaling.length > 0 ? `; scaling ${scaling.join(', ')}` : '') +
    (one ? `; ${fmt(one.redis.scriptCallsPerPacket, 2)} Redis round trips/packet (goal <= 2)` : '') +
    ` -> 1 worker ${meetsGoal(l) ? 'MEETS' : 'is BELOW'} the goal (>= 0.60 of floor)`
  )
}

/** What a bench measured: the `--json` document (numbers unrounded here; benchJson rounds them). */
export interface BenchReport {
  node: string
  cores: number
  options: BenchOptions
  packet: { amount: string; destination: string; expiryMs: number }
  levels: LevelResult[]
  summary: {
    concurrency: number
    floorPps: number
    farms: Array<{ workers: number; pps: number; ratio: number; cpuUsPerPacket: number }>
    redisRoundTripsPerPacket: number | null
    redisCommandsPerPacket: number | null
    meetsGoal: boolean
    /** --redis cluster only */
    cluster?: ClusterSummary
  }
}

export function report(opts: BenchOptions, levels: LevelResult[]): BenchReport {
  const headline = summaryLevel(levels)
  const one = headline.farms.find((f) => f.workers === 1)
  const cluster = clusterSummary(headline)
  return {
    node: process.version,
    cores: availableParallelism(),
    options: opts,
    packet: { amount: AMOUNT, destination: DESTINATION, expiryMs: EXPIRY_MS },
    levels,
    summary: {
      concurrency: headline.concurrency,
      floorPps: headline.floor.pps,
      farms: headline.farms.map((f) => ({ workers: f.workers, pps: f.pps, ratio: f.ratio, cpuUsPerPacket: f.cpuUsPerPacket })),
      redisRoundTripsPerPacket: one?.redis.scriptCallsPerPacket ?? null,
      redisCommandsPerPacket: one?.redis.commandsPerPacket ?? null,
      meetsGoal: meetsGoal(headline),
      ...(cluster ? { cluster } : {}),
    },
  }
}

/** The `--json` output: the report with fractions rounded to 3 digits (NaN becomes null). */
export function benchJson(r: BenchReport): string {
  const round = (_key: string, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Number(v.toFixed(3)) : v)
  return `${JSON.stringify(r, round, 2)}\n`
}

/** The human output: the table, what its columns mean, the Redis breakdown, non-fulfill reasons, the summary line. */
export function benchText(r: BenchReport, renderTable: TableRenderer = plainTable): string {
  const { levels, options: opts } = r
  const headline = summaryLevel(levels)
  const one = headline.farms.find((f) => f.workers === 1)
  const { head, rows } = levelRows(levels)
  const lines = [
    '',
    `ilp-farm bench: medians of ${opts.runs} run(s) x ${opts.durationMs / 1000} s per level (node ${r.node}, ${r.cores} cores; latencies per packet, end to end)`,
    '',
    renderTable(head, rows),
    '',
    'vs floor = farm pkt/s / floor pkt/s in the same run; non-fulfill = packets answered with anything but a Fulfill (warm-up included)',
    'cpu/pkt = CPU time per fulfilled packet of the floor process or of all the farm\'s workers; redis cpu/pkt = redis-server (Linux /proc)',
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
  const cluster = levels.some((l) => l.cluster)
  if (cluster) {
    const t = clusterTableRows(levels)
    lines.push(
      '',
      `Redis Cluster (${CLUSTER_MASTERS} masters x ${CLUSTER_REPLICAS_PER_MASTER} replica, local, appendonly no) against the single Redis (appendonly everysec), same load and run:`,
      '',
      renderTable(t.head, t.rows),
      '',
      'vs single = cluster pkt/s / single-Redis pkt/s, same farm size; vs none = durability replica pkt/s / durability none pkt/s',
      'redis RT/pkt, cmds/pkt and redis cpu/pkt: summed over the cluster\'s masters; replicas cpu/pkt: its replicas\' CPU per fulfilled packet',
      'cluster <n>w replica = redis.durability replica: each batch also waits for WAIT 1 on its master (not counted in redis RT/pkt; ' +
        `wait/pkt @${headline.concurrency}: ${(headline.cluster ?? []).filter((c) => c.durability === 'replica').map((c) => `${c.workers}w ${fmt(c.redis.breakdownPerPacket.wait ?? 0, 2)}`).join(', ')})`,
    )
  }
  const reasons = levels.flatMap((l) => [
    ...Object.entries(l.floor.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} floor: ${k} x${v}`),
    ...l.farms.flatMap((f) => Object.entries(f.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} ${workersLabel(f.workers)}: ${k} x${v}`)),
    ...(l.cluster ?? []).flatMap((f) => Object.entries(f.nonFulfillByReason).map(([k, v]) => `  c=${l.concurrency} ${clusterLabel(f)}: ${k} x${v}`)),
  ])
  if (reasons.length > 0) lines.push('non-fulfill reasons:', ...reasons)
  lines.push('', summaryLine(headline))
  if (r.summary.cluster) lines.push(clusterSummaryLine(r.summary.cluster))
  return `${lines.join('\n')}\n`
}
