/**
 * `npm run bench`: the farm (real processes, real Redis) with 1, 2 and N
 * workers against the floor of one pass-through Node HTTP hop and against
 * ilp-connector, the reference connector, under the same load in the same run.
 *
 *   npm run bench -- [--concurrency 1,10,50,100] [--workers 1,2] [--duration 5] [--runs 3] [--warmup 1] [--no-connector] [--json]
 *   npm run bench -- --accounts N [...]   (the account dimension: accounts.ts)
 *
 * Processes (all on 127.0.0.1, all stopped on exit, Ctrl+C or error):
 *   - redis-server (startEmbeddedRedis, temp dir, appendonly yes, appendfsync everysec)
 *   - receiver: this module with --role receiver; fulfills every prepare with
 *     fulfillment = sha256(secret || prepare.data) (roles.ts)
 *   - floor: this module with --role floor; forwards each body unchanged to the receiver
 *   - ilp-connector: this module with --role connector; ilp-connector 23 (createApp) with
 *     the sender a child and the receiver a peer over ilp-plugin-http, in-memory
 *     balances, its rate limit off, one-to-one rates (roles.ts); not with --no-connector
 *   - farms: `node dist/src/cli/main.js start --config <tmp>.json` with REDIS_URL set,
 *     one per --workers entry (each its own key prefix in the same Redis; farms.ts)
 *   - with --redis cluster: two local Redis Clusters (startLocalCluster, in the temp
 *     dir, appendonly yes, appendfsync everysec as the single Redis): 3 masters with
 *     no replica, like the single Redis, and one farm per --workers entry on it;
 *     3 masters x 1 replica (unless --cluster-replicas 0), and two farms per entry
 *     on it, redis.durability none and replica (REDIS_CLUSTER set). The
 *     single-Redis farms still run: they are the clusters' baseline.
 * The load generator runs here: C requests in flight, each a unique prepare (drive.ts).
 *
 * The measurement is `runBench(options, hooks)` (bench.ts), which
 * `ilp-farm bench` (src/cli/commands/bench.ts) calls too; run as a script,
 * this prints the plain table (or --json).
 */
import { runBench, stopBench, stopBenchOnFatalError } from './bench.js'
import { BENCH_USAGE, type BenchOptions, parseBenchOptions } from './options.js'
import { benchJson, benchText } from './report.js'
import { runRole } from './roles.js'

const stderrLog = (line: string): void => void process.stderr.write(`${line}\n`)

function onSignal(signal: NodeJS.Signals): void {
  stderrLog(`\nbench: ${signal} received, cleaning up`)
  void stopBench().finally(() => process.exit(130))
}

/** The exit code, or -1 for a role, which runs until the bench goes away. */
async function main(): Promise<number> {
  const roleIndex = process.argv.indexOf('--role')
  if (roleIndex >= 0 && runRole(process.argv[roleIndex + 1])) return -1
  // the account dimension is a bench of its own: two farms, one with many accounts, the same load
  if (process.argv.some((a) => a === '--accounts' || a.startsWith('--accounts='))) {
    const { accountsBenchMain } = await import('./accounts.js')
    return accountsBenchMain(process.argv.slice(2))
  }
  let opts: BenchOptions | undefined
  try {
    opts = parseBenchOptions(process.argv.slice(2))
  } catch (err) {
    process.stderr.write(`bench: ${(err as Error).message}\n\n${BENCH_USAGE}`)
    return 2
  }
  if (!opts) {
    process.stdout.write(BENCH_USAGE)
    return 0
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  stopBenchOnFatalError()
  const result = await runBench(opts)
  if (!result) return 130
  process.stdout.write(opts.json ? benchJson(result) : benchText(result))
  return 0
}

main().then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  async (err: unknown) => {
    stderrLog(`bench: ${(err as Error).stack ?? String(err)}`)
    await stopBench()
    process.exit(1)
  },
)
