import { Redis, type RedisOptions } from 'ioredis'

export interface RedisConnectOptions {
  commandTimeoutMs: number
}

/**
 * A client for the packet path: auto-pipelined, and failing fast while Redis
 * is unreachable (no offline queue, every call bounded by commandTimeoutMs)
 * so packets get T00 instead of hanging. ioredis reconnects by itself
 * (retryStrategy: every 100 ms to 1 s, forever).
 */
export async function connectRedis(url: string, opts: RedisConnectOptions): Promise<Redis> {
  const options: RedisOptions = {
    enableAutoPipelining: true,
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    // A call whose caller gave up (timed out: the packet got T00) must not run
    // later when the connection comes back: no resending of unanswered calls.
    autoResendUnfulfilledCommands: false,
    lazyConnect: true,
    retryStrategy: (times) => Math.min(times * 100, 1000),
  }
  const redis = new Redis(url, options)
  redis.on('error', () => {
    // connection errors surface through failed commands; ioredis reconnects by itself
  })
  await redis.connect()
  redis.options.enableOfflineQueue = false
  return redis
}
