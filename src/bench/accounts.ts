/**
 * The account dimension of the bench: the same load through a farm with a
 * baseline number of accounts (default 1,000) and one with --accounts N, in
 * the same run, on the same Redis.
 *
 *   npm run bench -- --accounts N [--baseline 1000] [--sample 10000] [--concurrency 50]
 *                    [--workers 1] [--duration 5] [--warmup 2] [--runs 3] [--startup-embedded] [--json]
 *
 * For each size: a farm (`ilp-farm start`, REDIS_URL set, its own key
 * prefix) is seeded with that many child accounts through the import path
 * (POST /admin/accounts/import, as `ilp-farm accounts import` sends it), then
 * restarted: the start-up is the time from `ilp-farm start` until a packet
 * from a random account is fulfilled. Load: C requests in flight, each
 * packet from one random account of a sample (10,000, or all) to another,
 * so every packet touches two random accounts; every child's outgoing URL
 * is the fulfilling receiver. Reported per size: import accounts/s,
 * start-up, pkt/s, p50/p99, worker and redis-server CPU per packet, worker
 * RSS, Redis memory, the slowest Redis command seen (SLOWLOG) during start-up
 * and load, and Redis commands/s while idle.
 *
 * --startup-embedded: at the end, the bench's Redis is stopped and the big
 * farm started as `npm start` does, with its embedded Redis on the same data:
 * the start-up then includes Redis loading N accounts.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { serializeIlpPrepare } from 'ilp-packet'
import { Redis } from 'ioredis'
import { Pool, request } from 'undici'
import { type EmbeddedRedis, freePort, startEmbeddedRedis } from '../farm/embedded-redis.js'
import { percentile } from './drive.js'
import { FARM_MAIN, untilListening } from './farms.js'
import { childPids, cpuOf } from './measure.js'
import { ENV_SECRET, fulfillmentFor, outcomeOf, RECEIVER_TOKEN } from './packets.js'
import { median } from './report.js'
import { cleanUpOnFatalError } from './fatal.js'
import { startRole } from './roles.js'

const ADMIN_TOKEN = 'bench-admin-token'
const IMPORT_BATCH = 10_000
const IMPORT_IN_FLIGHT = 2
const EXPIRY_MS = 30_000
const OCTET = 'application/octet-stream'

export interface AccountsBenchOptions {
  accounts: number
  baseline: number
  sample: number
  concurrency: number
  workers: number
  durationMs: number
  warmupMs: number
  runs: number
  startupEmbedded: boolean
  json: boolean
}

export const ACCOUNTS_USAGE = `Usage: npm run bench -- --accounts N [options]

  --accounts N          accounts in the big farm (1000..10000000)
  --baseline N          accounts in the baseline farm (default 1000)
  --sample N            accounts the load picks from (default 10000, at most the size)
  --concurrency C       requests in flight (default 50)
  --workers W           workers per farm (default 1)
  --duration SECONDS    measured time per run (default 5)
  --warmup SECONDS      unmeasured load before each run (default 2)
  --runs N              runs per farm, alternating; medians are reported (default 3)
  --startup-embedded    also time the big farm's start with its own embedded Redis on the bench's data
  --json                machine-readable results
`

export function parseAccountsOptions(argv: string[]): AccountsBenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      accounts: { type: 'string' },
      baseline: { type: 'string', default: '1000' },
      sample: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '50' },
      workers: { type: 'string', default: '1' },
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '2' },
      runs: { type: 'string', default: '3' },
      'startup-embedded': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    },
  })
  const int = (name: string, raw: string | undefined, min: number, max: number): number => {
    const n = Number(raw)
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be an integer ${min}..${max}, got "${raw}"`)
    return n
  }
  const seconds = (name: string, raw: string, min: number, max: number): number => {
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min || n > max) throw new Error(`--${name} must be between ${min} and ${max} seconds, got "${raw}"`)
    return Math.round(n * 1000)
  }
  return {
    accounts: int('accounts', values.accounts, 1000, 10_000_000),
    baseline: int('baseline', values.baseline, 10, 10_000_000),
    sample: int('sample', values.sample, 2, 1_000_000),
    concurrency: int('concurrency', values.concurrency, 1, 1000),
    workers: int('workers', values.workers, 1, 64),
    durationMs: seconds('duration', values.duration, 0.5, 120),
    warmupMs: seconds('warmup', values.warmup, 0, 60),
    runs: int('runs', values.runs, 1, 20),
    startupEmbedded: values['startup-embedded'],
    json: values.json,
  }
}

const log = (line: string): void => void process.stderr.write(`${line}\n`)
const fmt = (n: number, digits = 0): string => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a')
const idOf = (i: number): string => `a${String(i).padStart(7, '0')}`
const tokenOf = (id: string): string => `bench-${id}`

interface Farm {
  size: number
  prefix: string
  configFile: string
  child: ChildProcess
  url: string
  tail: () => string
}

interface SizeResult {
  size: number
  importPerSecond: number
  startupMs: number
  idleCommandsPerSecond: number
  pps: number
  p50Ms: number
  p99Ms: number
  workerCpuUsPerPacket: number
  redisCpuUsPerPacket: number
  workerRssMb: number
  redisMemoryMb: number
  /** The slowest Redis command seen during this farm's start-up and load, from SLOWLOG (µs and the command). */
  slowest: { micros: number; command: string } | null
  nonFulfill: Record<string, number>
}

export async function accountsBenchMain(argv: string[]): Promise<number> {
  let opts: AccountsBenchOptions
  try {
    opts = parseAccountsOptions(argv)
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${ACCOUNTS_USAGE}`)
    return 2
  }
  const farmMain = FARM_MAIN
  const tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-bench-accounts-'))
  const children: ChildProcess[] = []
  let redis: EmbeddedRedis | undefined
  let client: Redis | undefined
  const pools: Pool[] = []
  const cleanup = async () => {
    await Promise.allSettled(pools.map((p) => p.destroy()))
    await Promise.allSettled(children.map((c) => stopProcess(c)))
    client?.disconnect()
    await redis?.stop().catch(() => undefined)
    rmSync(tmp, { recursive: true, force: true })
  }
  const onSignal = () => void cleanup().finally(() => process.exit(130))
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  cleanUpOnFatalError(cleanup)
  try {
    redis = await startEmbeddedRedis({ dataDir: join(tmp, 'redis'), appendonly: true, appendfsync: 'everysec' })
    client = new Redis(redis.url, { maxRetriesPerRequest: 1 })
    await client.config('SET', 'slowlog-log-slower-than', '1000')
    await client.config('SET', 'slowlog-max-len', '10000')
    log(`bench: redis-server at ${redis.url}`)
    const secret = randomBytes(32)
    const receiver = await startRole('receiver', { [ENV_SECRET]: secret.toString('hex') }, children)

    const sizes = [opts.baseline, opts.accounts]
    const farms: Farm[] = []
    const seeded = new Map<number, { importPerSecond: number; startupMs: number; slowest: SizeResult['slowest'] }>()
    const idle = new Map<number, number>()
    for (const size of sizes) {
      const prefix = `acc${size}:`
      let farm = await startFarm(farmMain, tmp, redis.url, receiver.url, size, prefix, opts.workers, children)
      await client.slowlog('RESET')
      const importPerSecond = await seed(farm, size, receiver.url)
      // restart: the start-up with `size` accounts already in Redis
      await stopProcess(farm.child)
      await client.slowlog('RESET')
      const started = performance.now()
      farm = await startFarm(farmMain, tmp, redis.url, receiver.url, size, prefix, opts.workers, children, farm.configFile)
      await firstPacket(farm, size, secret)
      const startupMs = performance.now() - started
      log(`bench: ${size} accounts: imported at ${fmt(importPerSecond)}/s; start-up to a fulfilled packet ${fmt(startupMs)} ms`)
      seeded.set(size, { importPerSecond, startupMs, slowest: await slowest(client) })
      farms.push(farm)
      // idle: Redis commands per second with the farms started so far; this farm's share is the increase
      const rate = await idleRate(client)
      idle.set(size, rate - [...idle.values()].reduce((a, b) => a + b, 0))
    }

    const runs = new Map<number, LoadRun[]>(sizes.map((s) => [s, []]))
    await client.slowlog('RESET')
    const slowDuringLoad = new Map<number, SizeResult['slowest']>()
    for (let run = 0; run < opts.runs; run++) {
      const order = run % 2 === 0 ? farms : [...farms].reverse()
      for (const farm of order) {
        await client.slowlog('RESET')
        const result = await loadRun(farm, opts, secret, redis, pools)
        const seen = await slowest(client)
        const before = slowDuringLoad.get(farm.size) ?? null
        if (seen && (!before || seen.micros > before.micros)) slowDuringLoad.set(farm.size, seen)
        runs.get(farm.size)!.push(result)
        log(`  run ${run + 1}/${opts.runs} ${String(farm.size).padStart(8)} accounts: ${fmt(result.pps)} pkt/s  p50 ${fmt(result.p50Ms, 2)} ms  p99 ${fmt(result.p99Ms, 2)} ms  worker ${fmt(result.workerCpuUs)} us/pkt  redis ${fmt(result.redisCpuUs)} us/pkt`)
      }
    }
    const redisMemoryMb = Number(/used_memory:(\d+)/.exec(await client.info('memory'))?.[1] ?? NaN) / 1e6
    const results: SizeResult[] = farms.map((farm) => {
      const r = runs.get(farm.size)!
      const s = seeded.get(farm.size)!
      const load = slowDuringLoad.get(farm.size) ?? null
      const slowestSeen = [s.slowest, load].filter((x): x is NonNullable<typeof x> => x !== null).sort((a, b) => b.micros - a.micros)[0] ?? null
      return {
        size: farm.size,
        importPerSecond: s.importPerSecond,
        startupMs: s.startupMs,
        idleCommandsPerSecond: idle.get(farm.size)!,
        pps: median(r.map((x) => x.pps)),
        p50Ms: median(r.map((x) => x.p50Ms)),
        p99Ms: median(r.map((x) => x.p99Ms)),
        workerCpuUsPerPacket: median(r.map((x) => x.workerCpuUs)),
        redisCpuUsPerPacket: median(r.map((x) => x.redisCpuUs)),
        workerRssMb: Math.max(...workerPids(farm).map(rssMb)),
        redisMemoryMb,
        slowest: slowestSeen,
        nonFulfill: r.reduce<Record<string, number>>((acc, x) => {
          for (const [k, v] of Object.entries(x.nonFulfill)) acc[k] = (acc[k] ?? 0) + v
          return acc
        }, {}),
      }
    })

    let embeddedStartupMs: number | undefined
    if (opts.startupEmbedded) {
      for (const farm of farms) await stopProcess(farm.child)
      client.disconnect()
      client = undefined
      await redis.stop()
      redis = undefined
      embeddedStartupMs = await embeddedStartup(farmMain, tmp, farms[1]!, secret, children, opts)
      log(`bench: ${opts.accounts} accounts, embedded Redis: start-up to a fulfilled packet ${fmt(embeddedStartupMs)} ms`)
    }

    const ratio = results[1]!.pps / results[0]!.pps
    if (opts.json) {
      process.stdout.write(`${JSON.stringify({ options: opts, results, ratio, embeddedStartupMs: embeddedStartupMs ?? null }, null, 2)}\n`)
    } else {
      process.stdout.write(renderText(opts, results, ratio, embeddedStartupMs))
    }
    return 0
  } finally {
    await cleanup()
  }
}

function renderText(opts: AccountsBenchOptions, results: SizeResult[], ratio: number, embeddedStartupMs: number | undefined): string {
  const head = ['accounts', 'import/s', 'start-up', 'pkt/s', 'p50', 'p99', 'worker cpu/pkt', 'redis cpu/pkt', 'worker RSS', 'idle redis cmds/s', 'slowest redis cmd', 'non-fulfill']
  const rows = results.map((r) => [
    String(r.size),
    fmt(r.importPerSecond),
    `${fmt(r.startupMs)} ms`,
    fmt(r.pps),
    `${fmt(r.p50Ms, 2)} ms`,
    `${fmt(r.p99Ms, 2)} ms`,
    `${fmt(r.workerCpuUsPerPacket)} us`,
    `${fmt(r.redisCpuUsPerPacket)} us`,
    `${fmt(r.workerRssMb)} MB`,
    fmt(r.idleCommandsPerSecond, 1),
    r.slowest ? `${fmt(r.slowest.micros / 1000, 1)} ms ${r.slowest.command}` : '< 1 ms',
    String(Object.values(r.nonFulfill).reduce((a, b) => a + b, 0)),
  ])
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => c.padStart(widths[i]!)).join('  ')
  return [
    '',
    `ilp-farm bench --accounts: medians of ${opts.runs} run(s) x ${opts.durationMs / 1000} s at c=${opts.concurrency}, ${opts.workers} worker(s) per farm, ` +
      `each packet between two random accounts of a sample of ${opts.sample}`,
    '',
    line(head),
    widths.map((w) => '-'.repeat(w)).join('  '),
    ...rows.map(line),
    '',
    `redis memory (both farms' keys): ${fmt(results[0]!.redisMemoryMb)} MB; slowest = SLOWLOG over start-up and load (threshold 1 ms)`,
    ...(embeddedStartupMs === undefined ? [] : [`start-up of the ${results[1]!.size}-account farm with its own embedded Redis (loading the data): ${fmt(embeddedStartupMs)} ms`]),
    ...results.flatMap((r) => Object.entries(r.nonFulfill).map(([k, v]) => `  ${r.size} accounts: ${k} x${v}`)),
    '',
    `summary: ${results[1]!.size} accounts ${fmt(results[1]!.pps)} pkt/s vs ${results[0]!.size} accounts ${fmt(results[0]!.pps)} pkt/s: ratio ${fmt(ratio, 2)} (goal >= 0.85)`,
    '',
  ].join('\n')
}

// ---- pieces

async function startFarm(
  farmMain: string,
  tmp: string,
  redisUrl: string | undefined,
  receiverUrl: string,
  size: number,
  prefix: string,
  workers: number,
  children: ChildProcess[],
  existingConfig?: string,
  dataDir?: string,
): Promise<Farm> {
  let configFile = existingConfig
  if (configFile === undefined) {
    const port = await freePort()
    const config = {
      ilpAddress: 'test.farm',
      http: { host: '127.0.0.1', port },
      workers,
      admin: { token: ADMIN_TOKEN },
      redis: { dataDir: dataDir ?? join(tmp, `unused-${size}`), keyPrefix: prefix },
      log: { level: 'warn' },
      // the config's one account; the others come through the import path
      accounts: [{ id: 'ops', relation: 'child', assetCode: 'USD', assetScale: 6, outgoing: { url: receiverUrl, token: RECEIVER_TOKEN } }],
    }
    configFile = join(tmp, `farm-${size}.json`)
    writeFileSync(configFile, JSON.stringify(config, null, 2))
  }
  const env: NodeJS.ProcessEnv = { ...process.env }
  if (redisUrl === undefined) delete env.REDIS_URL
  else env.REDIS_URL = redisUrl
  const child = spawn(process.execPath, [farmMain, 'start', '--config', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  children.push(child)
  const { url, output } = await untilListening(child, 120_000)
  return { size, prefix, configFile, child, url, tail: output }
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return
  const exited = new Promise<void>((r) => child.once('exit', () => r()))
  child.kill('SIGTERM')
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {
      child.kill('SIGKILL')
    }
  }, 15_000)
  await exited
  clearTimeout(timer)
}

/** Seeds `size` child accounts through POST /admin/accounts/import; accounts per second. */
async function seed(farm: Farm, size: number, receiverUrl: string): Promise<number> {
  const started = performance.now()
  let next = 0
  let done = 0
  let lastLog = started
  const lane = async () => {
    while (next < size) {
      const from = next
      const to = Math.min(size, from + IMPORT_BATCH)
      next = to
      const batch = []
      for (let i = from; i < to; i++) {
        const id = idOf(i)
        batch.push({
          id,
          relation: 'child',
          assetCode: 'USD',
          assetScale: 6,
          minBalance: '-1000000000000000',
          incoming: { token: tokenOf(id) },
          outgoing: { url: receiverUrl, token: RECEIVER_TOKEN },
        })
      }
      const res = await request(`${farm.url}/admin/accounts/import`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}` },
        body: JSON.stringify(batch),
        headersTimeout: 300_000,
        bodyTimeout: 300_000,
      })
      const answer = (await res.body.json()) as { results?: Array<{ outcome: string; error?: string }>; error?: string }
      if (res.statusCode !== 200 || !answer.results) throw new Error(`import answered ${res.statusCode}: ${JSON.stringify(answer).slice(0, 500)}`)
      const bad = answer.results.find((r) => r.outcome !== 'created' && r.outcome !== 'unchanged')
      if (bad) throw new Error(`import refused a line: ${JSON.stringify(bad)}`)
      done += batch.length
      if (performance.now() - lastLog > 5000) {
        lastLog = performance.now()
        log(`bench: ${done}/${size} accounts imported`)
      }
    }
  }
  await Promise.all(Array.from({ length: IMPORT_IN_FLIGHT }, lane))
  return size / ((performance.now() - started) / 1000)
}

class Packets {
  private readonly nonce = randomBytes(8)
  private counter = 0n

  constructor(private readonly secret: Buffer) {}

  next(destination: string): Buffer {
    const data = Buffer.alloc(16)
    this.nonce.copy(data, 0)
    data.writeBigUInt64BE(this.counter++, 8)
    const fulfillment = fulfillmentFor(this.secret, data)
    return serializeIlpPrepare({
      destination,
      amount: '1',
      executionCondition: createHash('sha256').update(fulfillment).digest(),
      expiresAt: new Date(Date.now() + EXPIRY_MS),
      data,
    })
  }
}

/** One packet from a random account to another, retried until fulfilled (the workers may still be starting). */
async function firstPacket(farm: Farm, size: number, secret: Buffer): Promise<void> {
  const packets = new Packets(secret)
  const deadline = performance.now() + 120_000
  for (;;) {
    const from = idOf(Math.floor(Math.random() * size))
    const to = idOf(Math.floor(Math.random() * size))
    try {
      const res = await request(`${farm.url}/accounts/${from}/ilp`, {
        method: 'POST',
        headers: { 'content-type': OCTET, authorization: `Bearer ${tokenOf(from)}` },
        body: packets.next(`test.farm.${to}`),
      })
      if (outcomeOf(res.statusCode, Buffer.from(await res.body.arrayBuffer())) === 'fulfill') return
    } catch {
      // not listening yet
    }
    if (performance.now() > deadline) throw new Error(`no packet fulfilled within 120 s:\n${farm.tail()}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

function workerPids(farm: Farm): number[] {
  return childPids(farm.child.pid!)
}

function rssMb(pid: number): number {
  try {
    const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN)
    return kb / 1024
  } catch {
    return NaN
  }
}

async function slowest(client: Redis): Promise<{ micros: number; command: string } | null> {
  const entries = (await client.slowlog('GET', 10_000)) as Array<[number, number, number, string[]]>
  let best: { micros: number; command: string } | null = null
  for (const [, , micros, args] of entries) {
    // the bench's own calls (SLOWLOG RESET of a full log, INFO) are not the farm's
    if (/^(slowlog|info|config)$/i.test(args[0] ?? '')) continue
    if (!best || micros > best.micros) best = { micros, command: args.slice(0, 3).join(' ').slice(0, 80) }
  }
  return best
}

/** Redis commands per second over 3 s while nothing is sent (the measuring connection's own call left out). */
async function idleRate(client: Redis): Promise<number> {
  await new Promise((r) => setTimeout(r, 1000))
  const count = async () => Number(/total_commands_processed:(\d+)/.exec(await client.info('stats'))?.[1] ?? NaN)
  const before = await count()
  await new Promise((r) => setTimeout(r, 3000))
  return (await count() - before - 1) / 3
}

interface LoadRun {
  pps: number
  p50Ms: number
  p99Ms: number
  workerCpuUs: number
  redisCpuUs: number
  nonFulfill: Record<string, number>
}

async function loadRun(farm: Farm, opts: AccountsBenchOptions, secret: Buffer, redis: EmbeddedRedis, pools: Pool[]): Promise<LoadRun> {
  const sampleSize = Math.min(opts.sample, farm.size)
  // a fixed random sample per farm: the same ids in every run
  const sample = sampleIds(farm.size, sampleSize, farm.size)
  const pool = new Pool(new URL(farm.url).origin, { connections: opts.concurrency, keepAliveTimeout: 30_000, headersTimeout: 30_000, bodyTimeout: 30_000 })
  pools.push(pool)
  const packets = new Packets(secret)
  const pids = workerPids(farm)
  const start = performance.now()
  const windowStart = start + opts.warmupMs
  const windowEnd = windowStart + opts.durationMs
  let cpuBefore: number | undefined
  let redisBefore: number | undefined
  let fulfilledInWindow = 0
  const latencies: number[] = []
  const nonFulfill: Record<string, number> = {}
  const warmup = setTimeout(() => {
    cpuBefore = cpuOf(pids)
    redisBefore = cpuOf([redis.process.pid!])
  }, opts.warmupMs)
  const lane = async () => {
    while (performance.now() < windowEnd) {
      const from = sample[Math.floor(Math.random() * sample.length)]!
      let to = sample[Math.floor(Math.random() * sample.length)]!
      if (to === from) to = sample[(sample.indexOf(from) + 1) % sample.length]!
      const body = packets.next(`test.farm.${to}`)
      const sent = performance.now()
      let outcome: string
      try {
        const res = await pool.request({ method: 'POST', path: `/accounts/${from}/ilp`, headers: { 'content-type': OCTET, authorization: `Bearer ${tokenOf(from)}` }, body })
        outcome = outcomeOf(res.statusCode, Buffer.from(await res.body.arrayBuffer()))
      } catch (err) {
        outcome = `error ${(err as { code?: string }).code ?? (err as Error).message}`
      }
      const done = performance.now()
      if (outcome !== 'fulfill') nonFulfill[outcome] = (nonFulfill[outcome] ?? 0) + 1
      if (done >= windowStart && done <= windowEnd) {
        latencies.push(done - sent)
        if (outcome === 'fulfill') fulfilledInWindow++
      }
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, lane))
  clearTimeout(warmup)
  const cpuAfter = cpuOf(pids)
  const redisAfter = cpuOf([redis.process.pid!])
  await pool.close()
  const sorted = Float64Array.from(latencies).sort()
  // CPU over the window and the drain: per packet fulfilled in the window plus the few drained after it
  const counted = Math.max(1, fulfilledInWindow)
  return {
    pps: fulfilledInWindow / (opts.durationMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    workerCpuUs: cpuBefore !== undefined && cpuAfter !== undefined ? (cpuAfter - cpuBefore) / counted : NaN,
    redisCpuUs: redisBefore !== undefined && redisAfter !== undefined ? (redisAfter - redisBefore) / counted : NaN,
    nonFulfill,
  }
}

/** `count` distinct ids of 0..size-1, drawn at random but the same for a given seed. */
function sampleIds(size: number, count: number, seed: number): string[] {
  if (count >= size) return Array.from({ length: size }, (_, i) => idOf(i))
  let state = seed >>> 0 || 1
  const random = () => {
    state ^= state << 13
    state ^= state >>> 17
    state ^= state << 5
    return (state >>> 0) / 4294967296
  }
  const chosen = new Set<number>()
  while (chosen.size < count) chosen.add(Math.floor(random() * size))
  return [...chosen].map(idOf)
}

/** The big farm started as `npm start` would: its own embedded Redis on the bench's data. */
async function embeddedStartup(farmMain: string, tmp: string, big: Farm, secret: Buffer, children: ChildProcess[], opts: AccountsBenchOptions): Promise<number> {
  const config = JSON.parse(readFileSync(big.configFile, 'utf8')) as { redis: Record<string, unknown>; http: { port: number } }
  config.redis = { ...config.redis, dataDir: join(tmp, 'redis') }
  config.http.port = await freePort()
  const configFile = join(tmp, 'farm-embedded.json')
  writeFileSync(configFile, JSON.stringify(config))
  const started = performance.now()
  const farm = await startFarm(farmMain, tmp, undefined, '', big.size, big.prefix, opts.workers, children, configFile)
  await firstPacket(farm, big.size, secret)
  const ms = performance.now() - started
  await stopProcess(farm.child)
  return ms
}
