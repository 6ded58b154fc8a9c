/**
 * Soak: a real farm (`ilp-farm start` as a child process, its workers under
 * node:cluster) on a real Redis under a mixed load for N minutes, checked as
 * it runs and at the end.
 *
 *   npm run soak -- --minutes N [--workers 2] [--concurrency 16] [--interval 60] [--max-rss-growth-mb 64]
 *                   [--max-heap-growth-mb 32] [--max-redis-growth-mb 32] [--max-latency-factor 3]
 *   npm run soak -- --seconds S ...        (a short run, for the test)
 *
 * Load (one loop per --concurrency, each picking at random): sync packets the
 * next hop fulfills (50%) or rejects (15%), packets to a next hop that
 * answers async with a callback (18%), JSON-RPC `ilp_sendPrepare` and
 * `ilp_getBalance` (12%), and admin deposits and withdrawals with an
 * Idempotency-Key (5%); and one more loop of packets the next hop holds
 * until they expire (R00 after ~2 s each).
 *
 * Every --interval seconds it prints, per worker, RSS (from /proc) and V8
 * heap (a probe loaded into the farm's processes with NODE_OPTIONS --import
 * writes the lowest heapUsed of the last 5 s to a file), Redis used_memory, throughput,
 * p50/p99 latency, and the balance drift; and checks that no worker died and
 * the drift stays within what the loops can hold in flight. At the end, once
 * the load has stopped: nothing left in flight (within the longest expiry),
 * the balances sum to exactly what deposits and withdrawals applied, memory
 * growth from the first sample after the warm-up to the last within the
 * bounds, latency of the last window within --max-latency-factor of the
 * first (+ 20 ms), and no unexpected answer. Exit code 0 when every check
 * passes, 1 when one fails, 2 for bad usage.
 */
import type { ChildProcess } from 'node:child_process'
import { spawn } from 'node:child_process'
import { createHash, randomBytes, randomInt, randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { deserializeIlpPacket, deserializeIlpPrepare, serializeIlpFulfill, serializeIlpPrepare, serializeIlpReject, Type } from 'ilp-packet'
import { Redis } from 'ioredis'
import { Agent, request } from 'undici'
import { type EmbeddedRedis, freePort, startEmbeddedRedis } from '../src/farm/embedded-redis.js'
import { Ledger } from '../src/store/ledger.js'
import { percentile } from '../src/bench/drive.js'
import { stopFarm, untilListening } from '../src/bench/farms.js'
import { childPids } from '../src/bench/measure.js'
import { fulfillmentFor } from '../src/bench/packets.js'

const SELF = fileURLToPath(import.meta.url)
const RUNNING_TS = SELF.endsWith('.ts')
const ROOT = RUNNING_TS ? dirname(dirname(SELF)) : dirname(dirname(dirname(SELF)))
const FARM_MAIN = RUNNING_TS ? join(ROOT, 'src', 'cli', 'main.ts') : join(ROOT, 'dist', 'src', 'cli', 'main.js')

const ADMIN_TOKEN = 'soak-admin-token-0123456789'
const SENDER_TOKEN = 'soak-sender-token'
const PEER_TOKEN = 'soak-farm-to-peer-token'
const ASYNC_PEER_TOKEN = 'soak-async-peer-token'
const KEY_PREFIX = 'soak:'
const EXPIRY_MS = 30_000
/** Packets the "sleeper" never answers: the farm gives up at expiry − minMessageWindowMs (R00). */
const SLEEP_EXPIRY_MS = 3_000
const MAX_AMOUNT = 1_000
/** Latency bound of the last window: its p50 at most factor × the first window's p50 + this. */
const LATENCY_SLACK_MS = 20
/** Unexpected answers (HTTP errors, T00, a reject where a fulfill was due) tolerated, as a share of all requests. */
const MAX_UNEXPECTED_SHARE = 0.001

export interface SoakOptions {
  durationMs: number
  workers: number
  concurrency: number
  intervalMs: number
  maxRssGrowthMb: number
  maxHeapGrowthMb: number
  maxRedisGrowthMb: number
  maxLatencyFactor: number
}

const USAGE = `Usage: npm run soak -- --minutes N [options]

  --minutes N              how long the load runs (default 10)
  --seconds S              the same in seconds (a short run)
  --workers W              farm workers (default 2)
  --concurrency C          request loops (default 16)
  --interval S             seconds between samples and printed lines (default 60, at most a tenth of the run)
  --max-rss-growth-mb M    RSS growth allowed per worker, first sample after warm-up to last (default 64)
  --max-heap-growth-mb M   V8 heap growth allowed per worker (default 32)
  --max-redis-growth-mb M  Redis used_memory growth allowed (default 32)
  --max-latency-factor F   last window's p50 at most F x the first's + ${LATENCY_SLACK_MS} ms (default 3)
`

class UsageError extends Error {}

export function parseSoakOptions(argv: string[]): SoakOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      minutes: { type: 'string' },
      seconds: { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      interval: { type: 'string' },
      'max-rss-growth-mb': { type: 'string' },
      'max-heap-growth-mb': { type: 'string' },
      'max-redis-growth-mb': { type: 'string' },
      'max-latency-factor': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  })
  if (values.help) return undefined
  const num = (name: string, raw: string | undefined, fallback: number, min: number, max: number, integer = true): number => {
    if (raw === undefined) return fallback
    const n = Number(raw)
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) throw new UsageError(`--${name} must be ${integer ? 'an integer' : 'a number'} ${min}..${max}, got "${raw}"`)
    return n
  }
  if (values.minutes !== undefined && values.seconds !== undefined) throw new UsageError('give --minutes or --seconds, not both')
  const durationMs = values.seconds !== undefined ? num('seconds', values.seconds, 0, 1, 86_400) * 1000 : num('minutes', values.minutes, 10, 1, 1440) * 60_000
  const intervalMs = Math.min(num('interval', values.interval, 60, 1, 3600) * 1000, Math.max(1000, Math.floor(durationMs / 10 / 1000) * 1000))
  return {
    durationMs,
    workers: num('workers', values.workers, 2, 1, 64),
    concurrency: num('concurrency', values.concurrency, 16, 1, 1000),
    intervalMs,
    maxRssGrowthMb: num('max-rss-growth-mb', values['max-rss-growth-mb'], 64, 0, 1e6, false),
    maxHeapGrowthMb: num('max-heap-growth-mb', values['max-heap-growth-mb'], 32, 0, 1e6, false),
    maxRedisGrowthMb: num('max-redis-growth-mb', values['max-redis-growth-mb'], 32, 0, 1e6, false),
    maxLatencyFactor: num('max-latency-factor', values['max-latency-factor'], 3, 1, 1000, false),
  }
}

// ---------------------------------------------------------------- next hops

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

interface Peers {
  url: string
  close(): Promise<void>
}

/**
 * One HTTP server, four next hops by path: /fulfill (fulfillment =
 * sha256(secret ‖ data)), /reject (F99), /sleep (never answers; the farm
 * cancels it at its expiry) and /async (202, then the Fulfill POSTed to the
 * Callback-Url with the Request-Id).
 */
async function startPeers(secret: Buffer): Promise<Peers> {
  const held = new Set<ServerResponse>()
  const callbacks = new Agent({ connections: 32 })
  const server = createServer((req, res) => {
    readBody(req).then(
      async (body) => {
        const prepare = deserializeIlpPrepare(body)
        const fulfill = serializeIlpFulfill({ fulfillment: fulfillmentFor(secret, prepare.data), data: Buffer.alloc(0) })
        switch (req.url) {
          case '/fulfill':
            return void res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(fulfill)
          case '/reject':
            return void res
              .writeHead(200, { 'content-type': 'application/octet-stream' })
              .end(serializeIlpReject({ code: 'F99', triggeredBy: 'test.reject', message: 'no', data: Buffer.alloc(0) }))
          case '/sleep':
            held.add(res)
            res.on('close', () => held.delete(res))
            return
          case '/async': {
            res.writeHead(202).end()
            await new Promise((r) => setTimeout(r, randomInt(0, 20)))
            const answer = await request(String(req.headers['callback-url']), {
              method: 'POST',
              dispatcher: callbacks,
              headers: { 'content-type': 'application/octet-stream', 'request-id': String(req.headers['request-id']), authorization: `Bearer ${ASYNC_PEER_TOKEN}` },
              body: fulfill,
            })
            await answer.body.dump()
            return
          }
          default:
            res.writeHead(404).end()
        }
      },
      () => res.destroy(),
    ).catch(() => undefined)
  })
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    async close() {
      for (const res of held) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await callbacks.close()
    },
  }
}

// ---------------------------------------------------------------- farm

function farmConfig(port: number, workers: number, peersUrl: string, tmp: string): object {
  const peer = (id: string, path: string, extra: object = {}) => ({
    id,
    relation: 'peer',
    assetCode: 'USD',
    assetScale: 6,
    outgoing: { url: `${peersUrl}${path}`, token: PEER_TOKEN },
    routes: [`test.${id}`],
    ...extra,
  })
  return {
    ilpAddress: 'test.farm',
    http: { host: '127.0.0.1', port },
    workers,
    admin: { token: ADMIN_TOKEN },
    redis: { dataDir: join(tmp, 'farm-redis-unused'), keyPrefix: KEY_PREFIX },
    log: { level: 'warn' },
    accounts: [
      { id: 'sender', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000000000000000000', incoming: { token: SENDER_TOKEN } },
      peer('fulfiller', '/fulfill'),
      peer('rejecter', '/reject'),
      peer('sleeper', '/sleep'),
      peer('asyncpeer', '/async', { outgoing: { url: `${peersUrl}/async`, token: PEER_TOKEN, mode: 'async' }, incoming: { token: ASYNC_PEER_TOKEN } }),
    ],
  }
}

/**
 * Loaded into every farm process (NODE_OPTIONS --import): each second writes
 * to <dir>/<pid>.json the lowest heapUsed of the last 5 s, which follows the
 * live heap rather than where the collector happened to be.
 */
function heapProbeSource(dir: string): string {
  return `import { writeFileSync } from 'node:fs'
const file = ${JSON.stringify(dir)} + '/' + process.pid + '.json'
const recent = []
const write = () => {
  recent.push(process.memoryUsage().heapUsed)
  if (recent.length > 5) recent.shift()
  try { writeFileSync(file, JSON.stringify({ heapUsed: Math.min(...recent) })) } catch {}
}
setInterval(write, 1000).unref()
`
}

function rssBytes(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Number(m[1]) * 1024 : undefined
  } catch {
    return undefined
  }
}

function heapBytes(dir: string, pid: number): number | undefined {
  try {
    return (JSON.parse(readFileSync(join(dir, `${pid}.json`), 'utf8')) as { heapUsed: number }).heapUsed
  } catch {
    return undefined
  }
}

// ---------------------------------------------------------------- load

type Kind = 'fulfill' | 'reject' | 'timeout' | 'async' | 'rpc' | 'money'

/** What the request loops send; timeouts have a loop of their own (each holds it ~2 s). */
const KINDS: Array<[Kind, number]> = [
  ['fulfill', 0.5],
  ['reject', 0.15],
  ['async', 0.18],
  ['rpc', 0.12],
  ['money', 0.05],
]

function pickKind(): Kind {
  let r = Math.random()
  for (const [kind, share] of KINDS) {
    if (r < share) return kind
    r -= share
  }
  return 'fulfill'
}

interface Stats {
  requests: number
  byOutcome: Map<string, number>
  unexpected: number
  /** Latencies (ms) of packets answered at once (fulfill, reject, async, rpc), this window. */
  window: number[]
  /** Deposits minus withdrawals applied: what the balances must sum to. */
  applied: bigint
}

class Load {
  readonly stats: Stats = { requests: 0, byOutcome: new Map(), unexpected: 0, window: [], applied: 0n }
  private stopped = false
  private readonly agent: Agent
  private readonly nonce = randomBytes(8)
  private counter = 0n
  private running: Promise<void> = Promise.resolve()

  constructor(
    private readonly farmUrl: string,
    private readonly secret: Buffer,
    concurrency: number,
  ) {
    this.agent = new Agent({ connections: concurrency + 4, headersTimeout: 60_000, bodyTimeout: 60_000 })
    const loops = Array.from({ length: concurrency }, () => this.loop(pickKind))
    this.running = Promise.all([...loops, this.loop(() => 'timeout')]).then(() => undefined)
  }

  async stop(): Promise<void> {
    this.stopped = true
    await this.running
    await this.agent.close()
  }

  private count(outcome: string, expected: boolean): void {
    this.stats.requests++
    this.stats.byOutcome.set(outcome, (this.stats.byOutcome.get(outcome) ?? 0) + 1)
    if (!expected) this.stats.unexpected++
  }

  private packet(destination: string, expiresInMs: number): { raw: Buffer; data: Buffer; condition: Buffer; amount: string; expiresAt: Date } {
    const data = Buffer.alloc(16)
    this.nonce.copy(data, 0)
    data.writeBigUInt64BE(this.counter++, 8)
    const condition = createHash('sha256').update(fulfillmentFor(this.secret, data)).digest()
    const amount = String(randomInt(1, MAX_AMOUNT + 1))
    const expiresAt = new Date(Date.now() + expiresInMs)
    return { raw: serializeIlpPrepare({ destination, amount, executionCondition: condition, expiresAt, data }), data, condition, amount, expiresAt }
  }

  private async loop(next: () => Kind): Promise<void> {
    while (!this.stopped) {
      const kind = next()
      const started = performance.now()
      try {
        const timed = await this.one(kind)
        if (timed) this.stats.window.push(performance.now() - started)
      } catch (err) {
        this.count(`error (${(err as Error).message.slice(0, 40)})`, false)
        await new Promise((r) => setTimeout(r, 50))
      }
    }
  }

  /** One request of the kind; true when its latency counts (it is answered at once). */
  private async one(kind: Kind): Promise<boolean> {
    switch (kind) {
      case 'fulfill':
      case 'reject':
      case 'timeout':
      case 'async': {
        const destination = { fulfill: 'test.fulfiller.x', reject: 'test.rejecter.x', timeout: 'test.sleeper.x', async: 'test.asyncpeer.x' }[kind]
        const { raw } = this.packet(destination, kind === 'timeout' ? SLEEP_EXPIRY_MS : EXPIRY_MS)
        const res = await request(`${this.farmUrl}/accounts/sender/ilp`, {
          method: 'POST',
          dispatcher: this.agent,
          headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${SENDER_TOKEN}` },
          body: raw,
        })
        const body = Buffer.from(await res.body.arrayBuffer())
        if (res.statusCode !== 200) {
          this.count(`${kind}: HTTP ${res.statusCode}`, false)
          return false
        }
        const reply = deserializeIlpPacket(body)
        const outcome = reply.type === Type.TYPE_ILP_FULFILL ? 'fulfill' : (reply.data as { code: string }).code
        const due = kind === 'reject' ? 'F99' : kind === 'timeout' ? 'R00' : 'fulfill'
        this.count(`${kind}: ${outcome}`, outcome === due)
        return kind !== 'timeout'
      }
      case 'rpc': {
        const balance = Math.random() < 0.3
        let params: object | undefined
        if (!balance) {
          const p = this.packet('test.fulfiller.rpc', EXPIRY_MS)
          params = { amount: p.amount, destination: 'test.fulfiller.rpc', executionCondition: p.condition.toString('hex'), expiresAt: p.expiresAt.toISOString(), data: p.data.toString('base64') }
        }
        const res = await request(`${this.farmUrl}/rpc`, {
          method: 'POST',
          dispatcher: this.agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${SENDER_TOKEN}` },
          body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: balance ? 'ilp_getBalance' : 'ilp_sendPrepare', ...(params ? { params } : {}) }),
        })
        const text = await res.body.text()
        const answer = (res.statusCode === 200 ? JSON.parse(text) : {}) as { result?: { type?: string; balance?: string }; error?: { code: number } }
        const outcome = res.statusCode !== 200 ? `HTTP ${res.statusCode}` : answer.error ? `error ${answer.error.code}` : balance ? 'balance' : String(answer.result?.type)
        this.count(`rpc: ${outcome}`, outcome === (balance ? 'balance' : 'fulfill'))
        return true
      }
      case 'money': {
        const deposit = Math.random() < 0.5
        const amount = BigInt(randomInt(1, MAX_AMOUNT + 1))
        const res = await request(`${this.farmUrl}/admin/accounts/sender/${deposit ? 'deposits' : 'withdrawals'}`, {
          method: 'POST',
          dispatcher: this.agent,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_TOKEN}`, 'idempotency-key': randomUUID() },
          body: JSON.stringify({ amount: amount.toString() }),
        })
        const json = (await res.body.json()) as { applied?: boolean }
        if (res.statusCode === 200 && json.applied) this.stats.applied += deposit ? amount : -amount
        this.count(`${deposit ? 'deposit' : 'withdrawal'}: ${res.statusCode}`, res.statusCode === 200 && json.applied === true)
        return false
      }
    }
  }
}

// ---------------------------------------------------------------- checks

export interface Sample {
  atMs: number
  requests: number
  perSecond: number
  p50Ms: number
  p99Ms: number
  /** Per worker pid. */
  rss: Record<number, number>
  heap: Record<number, number>
  redisBytes: number
  drift: bigint
}

export interface SoakSummary {
  passed: boolean
  failures: string[]
  requests: number
  outcomes: Record<string, number>
  samples: Sample[]
}

const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(1)
const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : 'n/a')
const clock = (t: number) => `${String(Math.floor(t / 60_000)).padStart(2)}:${String(Math.floor((t % 60_000) / 1000)).padStart(2, '0')}`

async function adminJson<T>(farmUrl: string, path: string): Promise<T> {
  const res = await request(`${farmUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  if (res.statusCode !== 200) throw new Error(`GET ${path}: HTTP ${res.statusCode}`)
  return (await res.body.json()) as T
}

async function balanceSum(farmUrl: string): Promise<bigint> {
  const page = await adminJson<{ accounts: Array<{ balance: string }> }>(farmUrl, '/admin/accounts?limit=1000')
  return page.accounts.reduce((s, a) => s + BigInt(a.balance), 0n)
}

async function redisUsedMemory(client: Redis): Promise<number> {
  const m = /used_memory:(\d+)/.exec(await client.info('memory'))
  return m ? Number(m[1]) : NaN
}

/** Ends the load early (Ctrl+C, SIGTERM): the end checks still run, and everything started is stopped. */
const interrupted = new AbortController()

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    interrupted.signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    }, { once: true })
  })
}

export async function runSoak(opts: SoakOptions, log: (line: string) => void = (l) => void process.stdout.write(`${l}\n`)): Promise<SoakSummary> {
  const tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-soak-'))
  const probeDir = join(tmp, 'memory')
  const probe = join(tmp, 'probe.mjs')
  let redis: EmbeddedRedis | undefined
  let client: Redis | undefined
  let farm: ChildProcess | undefined
  let peers: Peers | undefined
  let load: Load | undefined
  const failures: string[] = []
  const samples: Sample[] = []
  try {
    const { mkdirSync } = await import('node:fs')
    mkdirSync(probeDir)
    writeFileSync(probe, heapProbeSource(probeDir))
    redis = await startEmbeddedRedis({ dataDir: join(tmp, 'redis'), appendonly: true })
    client = new Redis(redis.url)
    const secret = randomBytes(32)
    peers = await startPeers(secret)
    const port = await freePort()
    const configFile = join(tmp, 'farm.json')
    writeFileSync(configFile, JSON.stringify(farmConfig(port, opts.workers, peers.url, tmp), null, 2))
    const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: redis.url, NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(probe).href}`.trim() }
    delete env.REDIS_CLUSTER
    farm = spawn(process.execPath, [...process.execArgv, FARM_MAIN, 'start', '--config', configFile], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    const { url, output } = await untilListening(farm, 60_000)
    const supervisor = farm.pid!
    // the workers: node:cluster children of the supervisor, all up once each answers
    const deadline = Date.now() + 30_000
    let workers = childPids(supervisor)
    while (workers.length < opts.workers && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200))
      workers = childPids(supervisor)
    }
    if (workers.length < opts.workers) throw new Error(`only ${workers.length} of ${opts.workers} workers started:\n${output()}`)
    const startSum = await balanceSum(url)
    log(`soak: ${opts.workers} worker(s) (pids ${workers.join(', ')}), ${opts.concurrency} loops, ${opts.durationMs / 1000} s, a line every ${opts.intervalMs / 1000} s`)

    const startedAt = Date.now()
    load = new Load(url, secret, opts.concurrency)
    const driftBound = BigInt((opts.concurrency + 1) * MAX_AMOUNT)
    let lastRequests = 0
    let lastAt = startedAt
    while (Date.now() - startedAt < opts.durationMs && !interrupted.signal.aborted) {
      await sleep(Math.min(opts.intervalMs, opts.durationMs - (Date.now() - startedAt)))
      const now = Date.now()
      const window = load.stats.window.sort((a, b) => a - b)
      load.stats.window = []
      const sorted = Float64Array.from(window)
      const alive = childPids(supervisor)
      const sample: Sample = {
        atMs: now - startedAt,
        requests: load.stats.requests,
        perSecond: ((load.stats.requests - lastRequests) * 1000) / Math.max(1, now - lastAt),
        p50Ms: sorted.length ? percentile(sorted, 50) : NaN,
        p99Ms: sorted.length ? percentile(sorted, 99) : NaN,
        rss: Object.fromEntries(workers.map((pid) => [pid, rssBytes(pid) ?? NaN])),
        heap: Object.fromEntries(workers.map((pid) => [pid, heapBytes(probeDir, pid) ?? NaN])),
        redisBytes: await redisUsedMemory(client),
        drift: startSum + load.stats.applied - (await balanceSum(url)),
      }
      lastRequests = load.stats.requests
      lastAt = now
      samples.push(sample)
      log(
        `[${clock(sample.atMs)}] ${sample.requests} req (${sample.perSecond.toFixed(0)}/s)  p50 ${ms(sample.p50Ms)} ms  p99 ${ms(sample.p99Ms)} ms  ` +
          `rss ${workers.map((p) => mb(sample.rss[p]!)).join('/')} MB  heap ${workers.map((p) => mb(sample.heap[p]!)).join('/')} MB  ` +
          `redis ${mb(sample.redisBytes)} MB  drift ${sample.drift}  unexpected ${load.stats.unexpected}`,
      )
      const gone = workers.filter((pid) => !alive.includes(pid))
      if (gone.length > 0 || farm.exitCode !== null) {
        failures.push(`worker(s) ${gone.join(', ')} exited (at ${clock(sample.atMs)})`)
        break
      }
      // a drift larger than every loop holding one packet is money lost, not money in flight
      if (sample.drift < -driftBound || sample.drift > driftBound) failures.push(`balance drift ${sample.drift} beyond what is in flight (±${driftBound}) at ${clock(sample.atMs)}`)
    }
    await load.stop()
    const loadMs = Date.now() - startedAt

    // everything answered: after the longest expiry at most, nothing is left in flight and the sum is exact
    const ledger = new Ledger(client, KEY_PREFIX)
    const settleBy = Date.now() + EXPIRY_MS + 5_000
    let left = -1
    let drift = 0n
    for (;;) {
      const [incoming, outgoing] = await Promise.all([ledger.hotSet(), ledger.pendingCredits()])
      left = incoming.length + outgoing.length
      drift = startSum + load.stats.applied - (await balanceSum(url))
      if ((left === 0 && drift === 0n) || Date.now() > settleBy) break
      await new Promise((r) => setTimeout(r, 250))
    }
    if (left !== 0) failures.push(`${left} record(s) still in flight ${EXPIRY_MS / 1000 + 5} s after the load stopped`)
    if (drift !== 0n) failures.push(`balances drifted by ${drift} once settled`)

    // growth from the first sample after the warm-up (a fifth of the run) to the last
    const warm = samples.find((s) => s.atMs >= opts.durationMs / 5) ?? samples[0]
    const last = samples.at(-1)
    if (warm && last && warm !== last) {
      for (const pid of workers) {
        const rss = (last.rss[pid]! - warm.rss[pid]!) / 1024 / 1024
        const heap = (last.heap[pid]! - warm.heap[pid]!) / 1024 / 1024
        if (rss > opts.maxRssGrowthMb) failures.push(`worker ${pid}: RSS grew ${rss.toFixed(1)} MB (bound ${opts.maxRssGrowthMb} MB)`)
        if (heap > opts.maxHeapGrowthMb) failures.push(`worker ${pid}: heap grew ${heap.toFixed(1)} MB (bound ${opts.maxHeapGrowthMb} MB)`)
        if (Number.isNaN(rss) || Number.isNaN(heap)) log(`soak: worker ${pid}: no RSS or heap reading (no /proc, or the probe did not load)`)
      }
      const redisGrowth = (last.redisBytes - warm.redisBytes) / 1024 / 1024
      if (redisGrowth > opts.maxRedisGrowthMb) failures.push(`Redis used_memory grew ${redisGrowth.toFixed(1)} MB (bound ${opts.maxRedisGrowthMb} MB)`)
      if (Number.isFinite(warm.p50Ms) && last.p50Ms > warm.p50Ms * opts.maxLatencyFactor + LATENCY_SLACK_MS) {
        failures.push(`latency: p50 ${ms(last.p50Ms)} ms at the end against ${ms(warm.p50Ms)} ms after the warm-up (bound ${opts.maxLatencyFactor}x + ${LATENCY_SLACK_MS} ms)`)
      }
    }
    const { requests, unexpected } = load.stats
    if (requests === 0) failures.push('no request was answered')
    if (interrupted.signal.aborted) failures.push('interrupted before the end')
    if (unexpected > requests * MAX_UNEXPECTED_SHARE) failures.push(`${unexpected} unexpected answer(s) of ${requests} (bound ${MAX_UNEXPECTED_SHARE * 100}%)`)

    const outcomes = Object.fromEntries([...load.stats.byOutcome].sort((a, b) => b[1] - a[1]))
    const passed = failures.length === 0
    log(`soak: ${requests} requests in ${(loadMs / 1000).toFixed(0)} s: ${Object.entries(outcomes).map(([k, v]) => `${k} x${v}`).join(', ')}`)
    if (warm && last) {
      log(
        `soak: after warm-up → end: rss ${workers.map((p) => `${mb(warm.rss[p]!)}→${mb(last.rss[p]!)}`).join(', ')} MB; ` +
          `heap ${workers.map((p) => `${mb(warm.heap[p]!)}→${mb(last.heap[p]!)}`).join(', ')} MB; redis ${mb(warm.redisBytes)}→${mb(last.redisBytes)} MB; ` +
          `p50 ${ms(warm.p50Ms)}→${ms(last.p50Ms)} ms, p99 ${ms(warm.p99Ms)}→${ms(last.p99Ms)} ms`,
      )
    }
    log(`soak: in flight after the load ${left}, drift ${drift}, unexpected ${unexpected}`)
    log(passed ? 'soak: PASS' : `soak: FAIL\n${failures.map((f) => `  - ${f}`).join('\n')}`)
    return { passed, failures, requests, outcomes, samples }
  } finally {
    await load?.stop().catch(() => undefined)
    if (farm) await stopFarm(farm)
    await peers?.close().catch(() => undefined)
    client?.disconnect()
    await redis?.stop().catch(() => undefined)
    rmSync(tmp, { recursive: true, force: true })
  }
}

async function main(): Promise<number> {
  let opts: SoakOptions | undefined
  try {
    opts = parseSoakOptions(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`soak: ${(err as Error).message}\n\n${USAGE}`)
    return 2
  }
  if (!opts) {
    process.stdout.write(USAGE)
    return 0
  }
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => interrupted.abort())
  const summary = await runSoak(opts)
  return summary.passed ? 0 : 1
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  },
)
