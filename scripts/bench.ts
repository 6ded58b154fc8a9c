/**
 * Throughput/latency bench: the farm (real processes, real Redis) with 1, 2
 * and N workers against the floor of one pass-through Node HTTP hop, under
 * the same load in the same run.
 *
 *   npm run bench -- [--concurrency 1,10,50,100] [--workers 1,2] [--duration 5] [--runs 3] [--warmup 1] [--json]
 *   npm run bench -- --accounts N [...]   (the account dimension: scripts/bench-accounts.ts)
 *
 * Processes (all on 127.0.0.1, all stopped on exit, Ctrl+C or error):
 *   - redis-server (startEmbeddedRedis, temp dir, appendonly yes, appendfsync everysec)
 *   - receiver: this file with --role receiver; fulfills every prepare with
 *     fulfillment = sha256(secret || prepare.data)
 *   - floor: this file with --role floor; forwards each body unchanged to the receiver
 *   - farms: `node dist/src/cli/main.js start --config <tmp>.json` with REDIS_URL set,
 *     one per --workers entry (each its own key prefix in the same Redis)
 *   - with --redis cluster: a local Redis Cluster (startLocalCluster: 3 masters,
 *     1 replica each, in the temp dir) and, per --workers entry, two more farms
 *     on it (REDIS_CLUSTER set): redis.durability none and replica. The
 *     single-Redis farms still run: they are the cluster's baseline.
 * The load generator runs here: C requests in flight, each a unique prepare.
 *
 * The measurement is `runBench(options, hooks)` (progress callback, log sink),
 * which `ilp-farm bench` (src/cli/commands/bench.ts) calls too; run as a
 * script, this file prints the table (or --json) exactly as before.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { availableParallelism, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  deserializeIlpFulfill,
  deserializeIlpPrepare,
  deserializeIlpReject,
  serializeIlpFulfill,
  serializeIlpPrepare,
  Type,
} from 'ilp-packet'
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import { type EmbeddedRedis, freePort, startEmbeddedRedis } from '../src/farm/embedded-redis.js'
import { type LocalCluster, startLocalCluster } from '../src/farm/local-cluster.js'

const SELF = fileURLToPath(import.meta.url)
const RUNNING_TS = SELF.endsWith('.ts')
/** Package root: scripts/bench.ts under tsx, dist/scripts/bench.js once built. */
const ROOT = RUNNING_TS ? dirname(dirname(SELF)) : dirname(dirname(dirname(SELF)))
const FARM_MAIN = RUNNING_TS ? join(ROOT, 'src', 'cli', 'main.ts') : join(ROOT, 'dist', 'src', 'cli', 'main.js')

export const ENV_SECRET = 'ILP_BENCH_SECRET'
const ENV_TARGET = 'ILP_BENCH_TARGET'
const SENDER_TOKEN = 'bench-sender-token'
export const RECEIVER_TOKEN = 'bench-farm-to-receiver-token'
const DESTINATION = 'test.receiver.bench'
const AMOUNT = '10'
const EXPIRY_MS = 30_000
/** Same per-peer connection count as the farm's OutgoingClient. */
const FORWARD_CONNECTIONS = 128
const OCTET = 'application/octet-stream'

type ChildMessage = { type: 'ready'; url: string }

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

export function fulfillmentFor(secret: Buffer, data: Buffer): Buffer {
  return createHash('sha256').update(secret).update(data).digest()
}

/** A child role ends with its parent: the IPC channel closes when the bench goes away. */
function announce(server: import('node:http').Server, path: string): void {
  server.keepAliveTimeout = 65_000
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}${path}` } satisfies ChildMessage)
  })
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
}

// ---------------------------------------------------------------- receiver

function runReceiver(): void {
  const secret = Buffer.from(process.env[ENV_SECRET] ?? '', 'hex')
  const empty = Buffer.alloc(0)
  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        let answer: Buffer
        try {
          const prepare = deserializeIlpPrepare(body)
          answer = serializeIlpFulfill({ fulfillment: fulfillmentFor(secret, prepare.data), data: empty })
        } catch {
          res.writeHead(400).end()
          return
        }
        res.writeHead(200, { 'content-type': OCTET }).end(answer)
      },
      () => res.destroy(),
    )
  })
  announce(server, '/ilp')
}

// ---------------------------------------------------------------- floor

function runFloor(): void {
  const target = new URL(process.env[ENV_TARGET] ?? '')
  const pool = new Pool(target.origin, { connections: FORWARD_CONNECTIONS, keepAliveTimeout: 30_000 })
  const path = `${target.pathname}${target.search}`
  const headers = { 'content-type': OCTET, authorization: `Bearer ${RECEIVER_TOKEN}` }
  const server = createServer((req, res) => {
    readBody(req)
      .then(async (body) => {
        const answer = await pool.request({ method: 'POST', path, headers, body })
        const buf = Buffer.from(await answer.body.arrayBuffer())
        res.writeHead(answer.statusCode, { 'content-type': OCTET }).end(buf)
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end()
        else res.destroy()
      })
  })
  announce(server, '/accounts/sender/ilp')
}

// ---------------------------------------------------------------- bench

/** Which Redis the farms run on: one redis-server, or a local Redis Cluster (besides the single one, its baseline). */
export type RedisMode = 'single' | 'cluster'
const REDIS_MODES: readonly RedisMode[] = ['single', 'cluster']

export interface BenchOptions {
  concurrency: number[]
  /** Farm sizes to measure, each a separate farm process with that many workers. */
  workers: number[]
  /** 'cluster' adds the farms on a local Redis Cluster (durability none and replica) next to the single-Redis ones. */
  redis: RedisMode[]
  durationMs: number
  warmupMs: number
  runs: number
  json: boolean
}

/** The options' help, shared with `ilp-farm bench --help`. */
export const BENCH_OPTIONS_HELP = `  --concurrency LIST   comma-separated in-flight request counts (default 1,10,50,100)
  --workers LIST       farm sizes to measure, comma-separated (default 1,2, plus the core count when larger)
  --redis LIST         single, cluster or single,cluster (default single); cluster adds, per farm size, a farm
                       on a local 3-master Redis Cluster (1 replica each) and one with redis.durability replica,
                       compared with the single-Redis farm measured in the same run
  --duration SECONDS   measured time per run and target (default 5)
  --warmup SECONDS     unmeasured load before each measured run (default 1)
  --runs N             runs per concurrency and target; medians are reported (default 3)
  --json               print machine-readable results instead of the table
  -h, --help           show this help
`

const USAGE = `Usage: npm run bench -- [options]\n\n${BENCH_OPTIONS_HELP}`

export class BenchUsageError extends Error {}

/** The options from argv; undefined for --help. Throws BenchUsageError (or parseArgs' TypeError for an unknown flag). */
export function parseBenchOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      concurrency: { type: 'string', default: '1,10,50,100' },
      workers: { type: 'string', default: [...new Set([1, 2, availableParallelism()])].join(',') },
      redis: { type: 'string', default: 'single' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      runs: { type: 'string', default: '3' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  if (values.help) return undefined
  const concurrency = values.concurrency.split(',').map((s) => Number(s.trim()))
  if (concurrency.length === 0 || concurrency.some((c) => !Number.isInteger(c) || c < 1 || c > 1000)) {
    throw new BenchUsageError(`--concurrency must be a list of integers 1..1000, got "${values.concurrency}"`)
  }
  const workers = values.workers.split(',').map((s) => Number(s.trim()))
  if (workers.length === 0 || workers.some((w) => !Number.isInteger(w) || w < 1 || w > 64)) {
    throw new BenchUsageError(`--workers must be a list of integers 1..64, got "${values.workers}"`)
  }
  const redis = values.redis.split(',').map((s) => s.trim())
  if (redis.length === 0 || redis.some((r) => !REDIS_MODES.includes(r as RedisMode))) {
    throw new BenchUsageError(`--redis must be single, cluster or single,cluster, got "${values.redis}"`)
  }
  const seconds = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min || n > max) throw new BenchUsageError(`--${name} must be between ${min} and ${max} seconds, got "${raw}"`)
    return Math.round(n * 1000)
  }
  const runs = Number(values.runs)
  if (!Number.isInteger(runs) || runs < 1 || runs > 20) throw new BenchUsageError(`--runs must be an integer 1..20, got "${values.runs}"`)
  return {
    concurrency,
    workers: [...new Set(workers)],
    redis: REDIS_MODES.filter((m) => redis.includes(m)),
    durationMs: seconds('duration', values.duration, 0.2, 120),
    warmupMs: seconds('warmup', values.warmup, 0, 30),
    runs,
    json: values.json,
  }
}

const stderrLog = (line: string): void => void process.stderr.write(`${line}\n`)
/** Where progress lines go: stderr as a script, the caller's sink under runBench(hooks.log). */
let log = stderrLog

// -- resources, all released by cleanup()

const resources: {
  tmp?: string
  redis?: EmbeddedRedis
  redisClient?: Redis
  cluster?: LocalCluster
  /** One client per cluster node, for INFO. */
  clusterClients: Redis[]
  children: ChildProcess[]
  farms: ChildProcess[]
  pools: Pool[]
} = { children: [], farms: [], pools: [], clusterClients: [] }
let cleaningUp: Promise<void> | undefined
let aborted = false
/** One bench per process: its processes and temp folder live in the module state above. */
let running = false

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
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
    if (resources.cluster) await resources.cluster.stop().catch(() => undefined)
    if (resources.tmp) rmSync(resources.tmp, { recursive: true, force: true })
  })()
  return cleaningUp
}

function onSignal(signal: NodeJS.Signals): void {
  log(`\nbench: ${signal} received, cleaning up`)
  void cleanup().finally(() => process.exit(130))
}

// -- starting the pieces

async function startRole(role: 'receiver' | 'floor', env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(SELF, ['--role', role], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  resources.children.push(child)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 10 s`)), 10_000)
    child.once('message', (m: ChildMessage) => {
      clearTimeout(timer)
      resolve(m.url)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${role} exited (${signal ?? `code ${code}`}) before it was ready`))
    })
  })
  child.removeAllListeners('exit')
  return { child, url }
}

/** A farm to measure: its size and its Redis (one server, a cluster, a cluster with redis.durability replica). */
interface FarmSpec {
  workers: number
  redis: 'single' | 'cluster' | 'cluster-replica'
}

/** How a farm's Redis is measured: INFO commandstats summed over its masters, and CPU time of its masters and replicas. */
interface RedisProbe {
  commandStats(): Promise<Map<string, number>>
  /** CPU µs so far of the masters and (cluster) of the replicas; undefined where /proc is not there. */
  cpu(): { masters: number | undefined; replicas: number | undefined }
}

interface FarmHandle {
  spec: FarmSpec
  child: ChildProcess
  url: string
  output: () => string
  probe: RedisProbe
}

/** Where a farm's Redis is: a single server's URL, or a cluster's seeds. */
type FarmRedisTarget = { url: string } | { cluster: readonly string[] }

async function startFarm(tmp: string, target: FarmRedisTarget, receiverUrl: string, spec: FarmSpec, probe: RedisProbe): Promise<FarmHandle> {
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
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // own process group: the bench stops it (and its worker) in order
  })
  resources.farms.push(child)
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

// -- load

class PacketFactory {
  private readonly nonce = randomBytes(8)
  private counter = 0n

  constructor(private readonly secret: Buffer) {}

  next(): Buffer {
    const data = Buffer.alloc(16)
    this.nonce.copy(data, 0)
    data.writeBigUInt64BE(this.counter++, 8)
    const fulfillment = fulfillmentFor(this.secret, data)
    return serializeIlpPrepare({
      destination: DESTINATION,
      amount: AMOUNT,
      executionCondition: createHash('sha256').update(fulfillment).digest(),
      expiresAt: new Date(Date.now() + EXPIRY_MS),
      data,
    })
  }
}

interface Target {
  name: 'floor' | 'farm'
  pool: Pool
  path: string
  headers: Record<string, string>
}

export interface RunResult {
  /** Fulfilled packets completed inside the measured window, per second. */
  pps: number
  p50Ms: number
  p99Ms: number
  /** Completions inside the measured window. */
  measured: number
  /** Fulfilled over the whole run (warm-up, window, drain). */
  fulfilledTotal: number
  /** Anything but a Fulfill over the whole run, by reason. */
  nonFulfill: Record<string, number>
  /** Farm runs: Redis calls per command over the whole run (INFO commandstats delta). */
  redisCommands?: Record<string, number>
  /** CPU time of the forwarding process(es) (floor, or the farm's workers) per fulfilled packet, in µs. */
  hopCpuUsPerPacket?: number
  /** Farm runs: redis-server CPU time per fulfilled packet, in µs (on a cluster, its masters'). */
  redisCpuUsPerPacket?: number
  /** Cluster farm runs: the replicas' CPU time per fulfilled packet, in µs. */
  redisReplicaCpuUsPerPacket?: number
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

export function outcomeOf(status: number, body: Buffer): string {
  if (status !== 200) return `http ${status}`
  if (body[0] === Type.TYPE_ILP_FULFILL) return 'fulfill'
  if (body[0] === Type.TYPE_ILP_REJECT) {
    try {
      return `reject ${deserializeIlpReject(body).code}`
    } catch {
      return 'bad reject'
    }
  }
  return 'bad answer'
}

async function drive(target: Target, packets: PacketFactory, concurrency: number, warmupMs: number, durationMs: number): Promise<RunResult> {
  const start = performance.now()
  const windowStart = start + warmupMs
  const windowEnd = windowStart + durationMs
  const latencies: number[] = []
  let fulfilledInWindow = 0
  let fulfilledTotal = 0
  const nonFulfill: Record<string, number> = {}

  const lane = async (): Promise<void> => {
    while (!aborted && performance.now() < windowEnd) {
      const body = packets.next()
      const sent = performance.now()
      let outcome: string
      try {
        const res = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body })
        outcome = outcomeOf(res.statusCode, Buffer.from(await res.body.arrayBuffer()))
      } catch (err) {
        outcome = `error ${(err as { code?: string }).code ?? (err as Error).message}`
      }
      const done = performance.now()
      if (outcome === 'fulfill') fulfilledTotal++
      else nonFulfill[outcome] = (nonFulfill[outcome] ?? 0) + 1
      if (done >= windowStart && done <= windowEnd) {
        latencies.push(done - sent)
        if (outcome === 'fulfill') fulfilledInWindow++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const sorted = Float64Array.from(latencies).sort()
  return {
    pps: fulfilledInWindow / (durationMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    measured: latencies.length,
    fulfilledTotal,
    nonFulfill,
  }
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

const SCRIPT_COMMANDS = new Set(['eval', 'evalsha', 'eval_ro', 'evalsha_ro', 'fcall', 'fcall_ro'])
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

function summarize(runs: RunResult[]): TargetSummary {
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
function summarizeCluster(single: FarmResult[], none: FarmResult[], replica: FarmResult[]): ClusterFarmResult[] {
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

function summarizeFarm(workers: number, runs: RunResult[], floor: TargetSummary): FarmResult {
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

const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const workersLabel = (w: number) => `farm ${w}w`
/** A farm's name in the logs and the targets: `farm 1w` (single Redis), `cluster 1w`, `cluster 1w replica`. */
function farmLabel(spec: FarmSpec): string {
  if (spec.redis === 'single') return workersLabel(spec.workers)
  return `cluster ${spec.workers}w${spec.redis === 'cluster-replica' ? ' replica' : ''}`
}

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

function report(opts: BenchOptions, levels: LevelResult[]): BenchReport {
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

// -- measuring

/** Where a bench is: load done and planned (warm-up included; start-up and preflight are not counted). */
export interface BenchProgress {
  doneMs: number
  totalMs: number
  /** What runs now, e.g. "starting farm 2w" or "c=10 run 1/3 floor". */
  step: string
}

export interface BenchHooks {
  /** Called at each step and about every 250 ms while load runs. */
  onProgress?: (progress: BenchProgress) => void
  /** The bench's progress lines (default: stderr). */
  log?: (line: string) => void
}

const PROGRESS_INTERVAL_MS = 250

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
  cleaningUp = undefined
  aborted = false
  log = hooks.log ?? stderrLog
  try {
    const levels = await measure(opts, hooks.onProgress ?? (() => undefined))
    return levels === undefined ? undefined : report(opts, levels)
  } finally {
    await cleanup()
    running = false
  }
}

/** Interrupts a running bench and releases its processes and files (for a signal handler). */
export function stopBench(): Promise<void> {
  return cleanup()
}

/** 'floor', or a farm's label (farmLabel). */
type TargetName = string

/** The local cluster's size: 3 masters, each with a replica (so that durability replica can be measured). */
const CLUSTER_MASTERS = 3
const CLUSTER_REPLICAS_PER_MASTER = 1
/** Long enough that a node busy under the bench on a small machine is never taken for dead (a failover mid-run). */
const CLUSTER_NODE_TIMEOUT_MS = 15_000

/** The farms to measure: per --workers entry, the single-Redis one, then (--redis cluster) cluster and cluster with durability replica. */
function farmSpecs(opts: BenchOptions): FarmSpec[] {
  const kinds: Array<FarmSpec['redis']> = opts.redis.includes('cluster') ? ['single', 'cluster', 'cluster-replica'] : ['single']
  return kinds.flatMap((redis) => opts.workers.map((workers) => ({ workers, redis })))
}

/** The bench's local cluster, in its temp dir, stopped by cleanup(). */
async function startBenchCluster(tmp: string): Promise<LocalCluster> {
  const local = await startLocalCluster({
    dataDir: join(tmp, 'cluster'),
    masters: CLUSTER_MASTERS,
    replicasPerMaster: CLUSTER_REPLICAS_PER_MASTER,
    nodeTimeoutMs: CLUSTER_NODE_TIMEOUT_MS,
  })
  resources.cluster = local
  if (aborted) await local.stop() // cleanup() ran while it started
  return local
}

/** INFO commandstats of one node. */
async function nodeStats(client: Redis): Promise<Map<string, number>> {
  return commandStats(await client.info('commandstats'))
}

function singleProbe(redis: EmbeddedRedis, client: Redis): RedisProbe {
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
async function clusterProbe(cluster: LocalCluster): Promise<RedisProbe> {
  const masters = await cluster.masters()
  if (masters.length !== CLUSTER_MASTERS) throw new Error(`local cluster: ${masters.length} masters, expected ${CLUSTER_MASTERS}`)
  const replicas = cluster.nodes.filter((n) => !masters.includes(n))
  const clients: Redis[] = []
  for (const node of masters) {
    const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 1 })
    resources.clusterClients.push(client)
    await client.connect()
    clients.push(client)
  }
  return {
    async commandStats() {
      const total = new Map<string, number>()
      for (const stats of await Promise.all(clients.map(nodeStats))) {
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

async function measure(opts: BenchOptions, onProgress: (p: BenchProgress) => void): Promise<LevelResult[] | undefined> {
  const perRun = opts.warmupMs + opts.durationMs
  const specs = farmSpecs(opts)
  const targetCount = 1 + specs.length
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

  // the cluster comes up (node start, redis-cli --cluster create, replicas syncing) while the rest starts
  const clusterStarting = opts.redis.includes('cluster') ? startBenchCluster(tmp) : undefined
  clusterStarting?.catch(() => undefined) // awaited below; a failure meanwhile is not unhandled

  step('starting receiver and floor')
  const receiver = await startRole('receiver', { [ENV_SECRET]: secret.toString('hex') })
  log(`bench: receiver (pid ${receiver.child.pid}) at ${receiver.url}`)
  const floor = await startRole('floor', { [ENV_TARGET]: receiver.url })
  log(`bench: floor (pid ${floor.child.pid}) at ${floor.url}`)
  const single = singleProbe(redis, redisClient)
  let cluster: { seeds: readonly string[]; probe: RedisProbe } | undefined
  if (clusterStarting) {
    step('starting the Redis Cluster')
    const local = await clusterStarting
    cluster = { seeds: local.seeds, probe: await clusterProbe(local) }
    log(`bench: Redis Cluster of ${CLUSTER_MASTERS} masters x ${CLUSTER_REPLICAS_PER_MASTER} replica at ${local.seeds.join(',')} (appendonly no)`)
  }
  // the farms start side by side: each is idle until its turn under load
  step(`starting ${specs.length === 1 ? farmLabel(specs[0]!) : `${specs.length} farms`}`)
  const started = await Promise.all(
    specs.map((spec) => {
      const target = spec.redis === 'single' ? { url: redis.url } : { cluster: cluster!.seeds }
      return startFarm(tmp, target, receiver.url, spec, spec.redis === 'single' ? single : cluster!.probe)
    }),
  )
  const farms = new Map<TargetName, FarmHandle>()
  for (const farm of started) {
    const { spec } = farm
    farms.set(farmLabel(spec), farm)
    const what = spec.redis === 'single' ? '' : spec.redis === 'cluster' ? ', Redis Cluster' : ', Redis Cluster, durability replica'
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
  for (const [name, farm] of farms) {
    targets.set(name, { name: 'farm', pool: pool(farm.url), path: '/accounts/sender/ilp', headers })
  }
  const packets = new PacketFactory(secret)
  const farmOutput = () => [...farms.values()].map((f) => f.output()).join('\n')

  step('preflight')
  await preflight(targets, packets, farmOutput)

  const estimate = Math.ceil((opts.concurrency.length * opts.runs * targets.size * perRun) / 1000)
  log(
    `bench: concurrency ${opts.concurrency.join(',')}, farms of ${opts.workers.join(',')} worker(s)` +
      `${cluster ? ' on a single Redis and on the Redis Cluster (durability none, replica)' : ''}, ${opts.runs} run(s) x ` +
      `${opts.durationMs / 1000} s (+${opts.warmupMs / 1000} s warm-up) per target; about ${estimate} s of load`,
  )

  const progress = new LoadProgress(perRun, totalMs, onProgress)
  let levels: LevelResult[] | undefined
  try {
    levels = await load(opts, { targets, farms, floor, packets }, progress)
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

const nameOf = (t: TargetName) => t

/** One packet through each target, the fulfillment checked end to end. */
async function preflight(targets: Map<TargetName, Target>, packets: PacketFactory, farmOutput: () => string): Promise<void> {
  for (const [name, target] of targets) {
    const body = packets.next()
    const prepare = deserializeIlpPrepare(body)
    const res = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body })
    const answer = Buffer.from(await res.body.arrayBuffer())
    const outcome = outcomeOf(res.statusCode, answer)
    if (outcome !== 'fulfill') throw new Error(`preflight: ${nameOf(name)} answered ${outcome}; farm output:\n${farmOutput()}`)
    const { fulfillment } = deserializeIlpFulfill(answer)
    if (!createHash('sha256').update(fulfillment).digest().equals(prepare.executionCondition)) {
      throw new Error(`preflight: ${nameOf(name)} returned a fulfillment that does not match the condition`)
    }
  }
}

/** Load time done so far: whole runs finished plus the running one's elapsed time, reported on a timer. */
class LoadProgress {
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

interface LoadSetup {
  targets: Map<TargetName, Target>
  farms: Map<TargetName, FarmHandle>
  floor: { child: ChildProcess }
  packets: PacketFactory
}

/** Every concurrency × run × target; undefined when interrupted. */
async function load(opts: BenchOptions, setup: LoadSetup, progress: LoadProgress): Promise<LevelResult[] | undefined> {
  const names = [...setup.targets.keys()]
  const nameWidth = Math.max(8, ...names.map((n) => nameOf(n).length))
  const levels: LevelResult[] = []
  for (const concurrency of opts.concurrency) {
    const runs = new Map<TargetName, RunResult[]>(names.map((n) => [n, []]))
    for (let run = 0; run < opts.runs; run++) {
      // Rotate which target goes first so all see similar conditions.
      const shift = (run + levels.length) % names.length
      const order = [...names.slice(shift), ...names.slice(0, shift)]
      for (const name of order) {
        if (aborted) return undefined
        progress.runStarted(`c=${concurrency} run ${run + 1}/${opts.runs} ${nameOf(name)}`)
        const result = await measureRun(name, concurrency, opts, setup)
        if (aborted || result === undefined) return undefined
        progress.runEnded()
        runs.get(name)!.push(result)
        logRun(concurrency, run, opts.runs, name, result, nameWidth)
      }
    }
    const floorSummary = summarize(runs.get('floor')!)
    const farmsOf = (kind: FarmSpec['redis']) =>
      opts.workers.map((workers) => summarizeFarm(workers, runs.get(farmLabel({ workers, redis: kind }))!, floorSummary))
    const farms = farmsOf('single')
    const level: LevelResult = { concurrency, floor: floorSummary, farms }
    if (opts.redis.includes('cluster')) level.cluster = summarizeCluster(farms, farmsOf('cluster'), farmsOf('cluster-replica'))
    levels.push(level)
  }
  return levels
}

/** One run against one target, with its CPU time and (farms) Redis command counts. */
async function measureRun(name: TargetName, concurrency: number, opts: BenchOptions, setup: LoadSetup): Promise<RunResult | undefined> {
  const farm = name === 'floor' ? undefined : setup.farms.get(name)!
  if (farm && exited(farm.child)) throw new Error(`a farm exited during the bench:\n${farm.output()}`)
  const before = farm ? await farm.probe.commandStats() : undefined
  const hopPids = farm ? childPids(farm.child.pid!) : [setup.floor.child.pid!]
  const hopCpuBefore = cpuOf(hopPids)
  const redisCpuBefore = farm?.probe.cpu()
  const result = await drive(setup.targets.get(name)!, setup.packets, concurrency, opts.warmupMs, opts.durationMs)
  if (aborted) return undefined
  const hopCpuAfter = cpuOf(hopPids)
  const redisCpuAfter = farm?.probe.cpu()
  const perPacket = (from: number | undefined, to: number | undefined) =>
    from !== undefined && to !== undefined && result.fulfilledTotal > 0 ? (to - from) / result.fulfilledTotal : undefined
  const hop = perPacket(hopCpuBefore, hopCpuAfter)
  if (hop !== undefined) result.hopCpuUsPerPacket = hop
  if (farm && before) {
    result.redisCommands = commandDelta(before, await farm.probe.commandStats())
    const masters = perPacket(redisCpuBefore?.masters, redisCpuAfter?.masters)
    if (masters !== undefined) result.redisCpuUsPerPacket = masters
    const replicas = perPacket(redisCpuBefore?.replicas, redisCpuAfter?.replicas)
    if (replicas !== undefined) result.redisReplicaCpuUsPerPacket = replicas
  }
  return result
}

function logRun(concurrency: number, run: number, runs: number, name: TargetName, result: RunResult, nameWidth: number): void {
  const bad = Object.entries(result.nonFulfill)
  log(
    `  c=${String(concurrency).padStart(3)} run ${run + 1}/${runs} ${nameOf(name).padEnd(nameWidth)} ` +
      `${fmt(result.pps).padStart(6)} pkt/s  p50 ${fmt(result.p50Ms, 2)} ms  p99 ${fmt(result.p99Ms, 2)} ms` +
      `  cpu ${fmt(result.hopCpuUsPerPacket ?? NaN)} us/pkt` +
      (bad.length > 0 ? `  non-fulfill: ${bad.map(([k, v]) => `${k} x${v}`).join(', ')}` : ''),
  )
}

// -- as a script

async function main(): Promise<number> {
  const roleIndex = process.argv.indexOf('--role')
  const role = roleIndex >= 0 ? process.argv[roleIndex + 1] : undefined
  if (role === 'receiver') {
    runReceiver()
    return -1
  }
  if (role === 'floor') {
    runFloor()
    return -1
  }
  // the account dimension is a bench of its own: two farms, one with many accounts, the same load
  if (process.argv.some((a) => a === '--accounts' || a.startsWith('--accounts='))) {
    const { accountsBenchMain } = await import('./bench-accounts.js')
    return accountsBenchMain(process.argv.slice(2), SELF)
  }
  let opts: BenchOptions | undefined
  try {
    opts = parseBenchOptions(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (!opts) {
    process.stdout.write(USAGE)
    return 0
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  const result = await runBench(opts)
  if (!result) return 130
  process.stdout.write(opts.json ? benchJson(result) : benchText(result))
  return 0
}

/** Run as a script (or as a receiver/floor child), not when imported by the CLI. */
function isMain(): boolean {
  const entry = process.argv[1]
  if (entry === undefined) return false
  try {
    return realpathSync(entry) === realpathSync(SELF)
  } catch {
    return false
  }
}

if (isMain()) {
  main().then(
    (code) => {
      if (code >= 0) process.exit(code)
    },
    async (err: unknown) => {
      log(`bench: ${(err as Error).stack ?? String(err)}`)
      await cleanup()
      process.exit(1)
    },
  )
}
