/**
 * The bench's options (`npm run bench -- ...` and `ilp-farm bench ...`):
 * which concurrencies, farm sizes and Redis kinds to measure, whether
 * ilp-connector is measured too, for how long and how often, and their help
 * text.
 */
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'

/** Which Redis the farms run on: one redis-server, or a local Redis Cluster (besides the single one, its baseline). */
export type RedisMode = 'single' | 'cluster'
export const REDIS_MODES: readonly RedisMode[] = ['single', 'cluster']

export interface BenchOptions {
  concurrency: number[]
  /** Farm sizes to measure, each a separate farm process with that many workers. */
  workers: number[]
  /** 'cluster' adds the farms on local Redis Clusters (masters only; with replicas, durability none and replica) next to the single-Redis ones. */
  redis: RedisMode[]
  /**
   * Replicas per master of the second local cluster, the one durability
   * replica is measured on (0 or 1, default 1). The first cluster is always
   * masters only, like the single Redis, which has no replica: on one box the
   * replicas take CPU from the farm that hosts of their own would not. With 0
   * there is no second cluster, and durability replica is not measured.
   */
  clusterReplicas: 0 | 1
  /** ilp-connector (a devDependency) measured beside the floor and the farms; off with --no-connector. */
  connector: boolean
  /** The redis floor (the floor keeping a record of each packet in Redis) measured beside the floor; off with --no-redis-floor. */
  redisFloor: boolean
  durationMs: number
  warmupMs: number
  runs: number
  json: boolean
}

/** The options' help, shared with `ilp-farm bench --help`. */
export const BENCH_OPTIONS_HELP = `  --concurrency LIST   comma-separated in-flight request counts (default 1,10,50,100)
  --workers LIST       farm sizes to measure, comma-separated (default 1,2, plus the core count when larger)
  --redis LIST         single, cluster or single,cluster (default single); cluster adds, per farm size, a farm
                       on a local 3-master Redis Cluster (no replica, as the single Redis: the cluster/single
                       goal), and two on a second one with replicas, durability none and replica (what waiting
                       for the replicas costs), all compared with the single-Redis farm measured in the same run
  --cluster-replicas N replicas per master of the second cluster, 0 or 1 (default 1); 0 leaves it out, and
                       durability replica is not measured
  --no-connector       leave out ilp-connector, the reference connector (measured by default, in its own process,
                       with in-memory balances and its rate limit off; it is a devDependency, so an install
                       without devDependencies needs this flag)
  --no-redis-floor     leave out floor+redis, the floor that also writes each packet's record to the farm's
                       Redis before forwarding it and deletes it once answered (measured by default: the
                       least that a ledger in Redis costs, against which the farm's own cost shows)
  --duration SECONDS   measured time per run and target (default 5)
  --warmup SECONDS     unmeasured load before each measured run (default 1)
  --runs N             runs per concurrency and target; medians are reported (default 3)
  --json               print machine-readable results instead of the table
  -h, --help           show this help
`


/** The script's usage (`npm run bench -- --help`). */
export const BENCH_USAGE = `Usage: npm run bench -- [options]\n\n${BENCH_OPTIONS_HELP}`

export class BenchUsageError extends Error {}

/** The options from argv; undefined for --help. Throws BenchUsageError (or parseArgs' TypeError for an unknown flag). */
export function parseBenchOptions(argv: string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: argv,
    options: {
      concurrency: { type: 'string', default: '1,10,50,100' },
      workers: { type: 'string', default: [...new Set([1, 2, availableParallelism()])].join(',') },
      redis: { type: 'string', default: 'single' },
      'cluster-replicas': { type: 'string', default: '1' },
      'no-connector': { type: 'boolean', default: false },
      'no-redis-floor': { type: 'boolean', default: false },
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
  const clusterReplicas = values['cluster-replicas']
  if (clusterReplicas !== '0' && clusterReplicas !== '1') throw new BenchUsageError(`--cluster-replicas must be 0 or 1, got "${clusterReplicas}"`)
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
    clusterReplicas: clusterReplicas === '0' ? 0 : 1,
    connector: !values['no-connector'],
    redisFloor: !values['no-redis-floor'],
    durationMs: seconds('duration', values.duration, 0.2, 120),
    warmupMs: seconds('warmup', values.warmup, 0, 30),
    runs,
    json: values.json,
  }
}
