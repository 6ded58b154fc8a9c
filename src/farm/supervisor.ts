import cluster, { type Worker as ClusterWorker } from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import type { FarmConfig } from '../config/schema.js'
import { connectRedis, describeTarget, type RedisClient, type RedisTarget, redisTarget } from '../store/redis.js'
import { type EmbeddedRedis, freePort, startEmbeddedRedis } from './embedded-redis.js'
import type { SupervisorMessage, WorkerMessage } from './ipc.js'

export interface Supervisor {
  readonly url: string
  /** The embedded Redis' URL, or the configured one; undefined on a cluster (see `redis`). */
  readonly redisUrl: string | undefined
  /** What the workers connect to: one Redis, or a cluster's seed nodes. */
  readonly redis: RedisTarget
  readonly embeddedRedis: EmbeddedRedis | undefined
  stop(): Promise<void>
}

type Say = (line: string) => void

/** The worker entry next to this module: .ts under tsx, .js once built. */
function workerEntry(): string {
  const self = fileURLToPath(import.meta.url)
  return self.replace(/supervisor\.(ts|js)$/, (_m, ext: string) => `worker-main.${ext}`)
}

async function checkRedis(target: RedisTarget, config: FarmConfig): Promise<void> {
  let redis: RedisClient | undefined
  try {
    redis = await connectRedis(target, { commandTimeoutMs: config.redis.commandTimeoutMs })
    await redis.ping()
  } finally {
    redis?.disconnect()
  }
}

/**
 * `ilp-farm start`: makes sure Redis is there (an embedded redis-server child
 * when no URL is configured), forks the workers that share the HTTP port,
 * restarts any that die, and shuts everything down in order on a signal.
 */
export async function startSupervisor(config: FarmConfig, say: Say): Promise<Supervisor> {
  let embeddedRedis: EmbeddedRedis | undefined
  let redisUrl = config.redis.url
  // a cluster (redis.cluster, REDIS_CLUSTER) is never embedded
  if (!redisUrl && !config.redis.cluster) {
    // a fresh password each start: only this supervisor's workers (told over IPC) can talk to it
    embeddedRedis = await startEmbeddedRedis({ dataDir: config.redis.dataDir, appendfsync: config.redis.appendfsync, password: randomBytes(24).toString('base64url') })
    redisUrl = embeddedRedis.url
    say(`ilp-farm: embedded redis-server at redis://127.0.0.1:${embeddedRedis.port} (password required; append-only data in ${embeddedRedis.dataDir})`)
  }
  const redis = redisTarget(config.redis, redisUrl)
  try {
    await checkRedis(redis, config)
  } catch (err) {
    await embeddedRedis?.stop()
    throw new Error(`cannot reach Redis at ${describeTarget(redis)}: ${(err as Error).message}`)
  }

  if (!config.http.tls) say('ilp-farm: warning: serving plain HTTP (no http.tls): account tokens, also those of /rpc, travel unencrypted; use it only locally')

  // http.port 0 (any free port) is chosen here once: a worker restarted after all of them had died
  // (the shared listening socket closes with the last one) must listen on the same port again.
  const workerConfig: FarmConfig =
    config.http.port === 0 ? { ...config, http: { ...config.http, port: await freePort(config.http.host) } } : config

  // Workers accept on the shared listening socket themselves. With the round-robin default the primary
  // accepts each connection and hands it to a worker over IPC; a hand-off to a worker that dies is never
  // completed nor closed, and its client waits forever. A connection a worker accepted itself is closed by
  // the kernel when that worker dies, and the ones still queued are taken by the others.
  cluster.schedulingPolicy = cluster.SCHED_NONE
  // libuv accepts every pending connection in one go, so a burst would all land on the worker that woke
  // first; with single accept it takes one and yields, and the burst spreads over the workers
  cluster.setupPrimary({ exec: workerEntry() })
  const workerEnv = { UV_TCP_SINGLE_ACCEPT: '1' }
  let stopping = false
  const shards = new Map<number, ClusterWorker>()
  const listening = new Map<number, string>()
  const restarts = new Map<number, number>()
  let firstUrl: (url: string) => void
  let startupFailed: (err: Error) => void
  const allListening = new Promise<string>((resolveUrl, reject) => {
    firstUrl = resolveUrl
    startupFailed = reject
  })
  let started = false
  /** Why a worker could not start, as it said before exiting. */
  const failures = new Map<number, string>()

  const fork = (shard: number): void => {
    const worker = cluster.fork(workerEnv)
    const forkedAt = Date.now()
    shards.set(shard, worker)
    worker.on('message', (message: WorkerMessage) => {
      if (message.type === 'ready') {
        worker.send({ type: 'start', config: workerConfig, shard, redis } satisfies SupervisorMessage)
        return
      }
      if (message.type === 'failed') {
        failures.set(shard, message.message)
        return
      }
      if (message.type !== 'listening') return
      listening.set(shard, message.url)
      if (listening.size === config.workers && !started) {
        started = true
        firstUrl(message.url)
      }
    })
    worker.on('exit', (code, signal) => {
      if (stopping) return
      // A worker that cannot start (port in use, bad TLS files...) would fail the same way again: give up.
      if (!started) {
        const why = failures.get(shard)
        startupFailed(new Error(`worker ${shard} exited (${signal ?? `code ${code}`}) before it was listening${why ? `: ${why}` : '; see its error above'}`))
        return
      }
      // Back off while a worker keeps dying young; a worker that ran a while restarts at once.
      const delay = Date.now() - forkedAt > 30_000 ? 0 : Math.min(500 * 2 ** (restarts.get(shard) ?? 0), 10_000)
      restarts.set(shard, delay === 0 ? 0 : (restarts.get(shard) ?? 0) + 1)
      say(`ilp-farm: worker ${shard} exited (${signal ?? `code ${code}`}); restarting it in ${delay} ms`)
      setTimeout(() => !stopping && fork(shard), delay)
    })
  }
  const stopWorkers = () =>
    Promise.all(
      [...shards.values()].map(
        (worker) =>
          new Promise<void>((done) => {
            if (worker.isDead()) return done()
            const timer = setTimeout(() => worker.process.kill('SIGKILL'), 10_000)
            worker.once('exit', () => {
              clearTimeout(timer)
              done()
            })
            // With a callback, a worker already on its way out (Ctrl+C reaches it too) is no 'error' event.
            worker.send({ type: 'shutdown' } satisfies SupervisorMessage, undefined, () => undefined)
          }),
      ),
    )

  for (let shard = 0; shard < config.workers; shard++) fork(shard)
  let url: string
  try {
    url = await allListening
  } catch (err) {
    stopping = true
    // Workers still starting have no shutdown handler yet: SIGTERM ends them either way.
    for (const worker of shards.values()) if (!worker.isDead()) worker.process.kill('SIGTERM')
    await stopWorkers()
    await embeddedRedis?.stop()
    throw err
  }

  return {
    url,
    redisUrl,
    redis,
    embeddedRedis,
    async stop() {
      if (stopping) return
      stopping = true
      await stopWorkers()
      await embeddedRedis?.stop()
    },
  }
}
