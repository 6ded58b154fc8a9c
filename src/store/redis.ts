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

export interface Subscriber {
  close(): Promise<void>
}

export interface SubscriberOptions {
  /** Called for each message (text); the channel is implied: one subscriber per channel. */
  onMessage?: (message: string) => void
  /** Called for each message as bytes (binary payloads). */
  onMessageBuffer?: (message: Buffer) => void
  /** Called each time the connection is back after a loss: messages may have been missed meanwhile. */
  onReconnect?: () => void
}

/**
 * A connection subscribed to one channel (a subscribed connection can run no
 * other command). ioredis reconnects and resubscribes by itself; whoever
 * subscribes learns of each reconnect, since messages published during the
 * gap are gone.
 */
export async function openSubscriber(url: string, channel: string, opts: SubscriberOptions): Promise<Subscriber> {
  const subscriber = new Redis(url, { lazyConnect: true, retryStrategy: (times) => Math.min(times * 100, 1000) })
  subscriber.on('error', () => {
    // connection errors: ioredis reconnects and resubscribes
  })
  if (opts.onMessage) {
    const onMessage = opts.onMessage
    subscriber.on('message', (_channel: string, message: string) => onMessage(message))
  }
  if (opts.onMessageBuffer) {
    const onMessageBuffer = opts.onMessageBuffer
    subscriber.on('messageBuffer', (_channel: Buffer, message: Buffer) => onMessageBuffer(message))
  }
  let connectedOnce = false
  subscriber.on('ready', () => {
    if (connectedOnce) opts.onReconnect?.()
    connectedOnce = true
  })
  await subscriber.connect()
  await subscriber.subscribe(channel)
  return {
    async close() {
      await subscriber.quit().catch(() => undefined)
      subscriber.disconnect()
    },
  }
}
