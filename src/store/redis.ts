import { Cluster, type ClusterNode, type ClusterOptions, Redis, type RedisOptions } from 'ioredis'

/**
 * Redis connections of the farm: one Redis (a URL) or a Redis Cluster (seed
 * node URLs), the command client and the pub/sub subscribers. Everything
 * above takes a RedisClient and runs the same commands on either.
 */

/** Where the farm's Redis is: one server, or the seed nodes of a Redis Cluster (their password, if any, is in the URLs or given apart). */
export type RedisTarget = { url: string } | { cluster: readonly string[]; password?: string }

/** A client that runs commands: one Redis or a whole Cluster (ioredis routes each command by its key's slot). */
export type RedisClient = Redis | Cluster

export interface RedisConnectOptions {
  commandTimeoutMs: number
}

/** The target of a farm's redis config: `cluster` when set, else `url` (the embedded one's when the config has none). */
export function redisTarget(redis: { url?: string | undefined; cluster?: readonly string[] | undefined }, fallbackUrl?: string): RedisTarget {
  if (redis.cluster !== undefined && redis.cluster.length > 0) return { cluster: redis.cluster }
  const url = redis.url ?? fallbackUrl
  if (url === undefined) throw new Error('no Redis: neither a url nor cluster seed nodes')
  return { url }
}

function asTarget(target: string | RedisTarget): RedisTarget {
  return typeof target === 'string' ? { url: target } : target
}

/** Whether `client` is a Cluster client (its multi-key commands, pipelines and scripts must stay within one slot). */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster
}

/** A target fit for a log line: passwords left out. */
export function describeTarget(target: string | RedisTarget): string {
  const t = asTarget(target)
  return 'url' in t ? withoutPassword(t.url) : `cluster ${t.cluster.map(withoutPassword).join(',')}`
}

function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url)
    if (parsed.password === '') return url
    parsed.password = '***'
    return parsed.toString()
  } catch {
    return url
  }
}

const retryStrategy = (times: number): number => Math.min(times * 100, 1000)

/**
 * The seed nodes of a cluster target, and the per-node options they carry: a
 * password (and user) from the first URL that has one, TLS for rediss://.
 */
function clusterSeeds(target: { cluster: readonly string[]; password?: string }): { nodes: ClusterNode[]; node: RedisOptions } {
  const node: RedisOptions = {}
  const nodes = target.cluster.map((seed) => {
    const url = new URL(seed.includes('://') ? seed : `redis://${seed}`)
    if (url.password !== '' && node.password === undefined) {
      node.password = decodeURIComponent(url.password)
      if (url.username !== '') node.username = decodeURIComponent(url.username)
    }
    if (url.protocol === 'rediss:') node.tls = {}
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 6379 : Number(url.port) }
  })
  if (target.password !== undefined) node.password = target.password
  return { nodes, node }
}

/**
 * Cluster options shared by the command client and the subscribers: the
 * client follows MOVED and ASK (up to maxRedirections), re-reads the slot map
 * on a redirection, on a lost node and every 5 s, and retries a command that
 * hit a failover (CLUSTERDOWN, TRYAGAIN, a dead master) after 100 ms, so a
 * replica promoted after its master died takes over the slots without the
 * farm doing anything. Reads and writes go to masters only.
 */
function clusterOptions(node: RedisOptions, extra: Partial<ClusterOptions>): ClusterOptions {
  return {
    scaleReads: 'master',
    enableReadyCheck: true,
    maxRedirections: 16,
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    retryDelayOnTryAgain: 100,
    slotsRefreshTimeout: 1000,
    slotsRefreshInterval: 5000,
    // all seed nodes gone: keep trying them (every 100 ms to 1 s), as the single-Redis client does
    clusterRetryStrategy: retryStrategy,
    lazyConnect: true,
    ...extra,
    redisOptions: { ...node, ...extra.redisOptions },
  }
}

/**
 * A client for the packet path: auto-pipelined, and failing fast while Redis
 * is unreachable (no offline queue, every call bounded by commandTimeoutMs)
 * so packets get T00 instead of hanging. ioredis reconnects by itself
 * (retryStrategy: every 100 ms to 1 s, forever). On a cluster the same holds
 * per node, and the client follows the cluster's topology (see clusterOptions).
 */
export async function connectRedis(target: string | { url: string }, opts: RedisConnectOptions): Promise<Redis>
export async function connectRedis(target: string | RedisTarget, opts: RedisConnectOptions): Promise<RedisClient>
export async function connectRedis(target: string | RedisTarget, opts: RedisConnectOptions): Promise<RedisClient> {
  const t = asTarget(target)
  const perNode: RedisOptions = {
    maxRetriesPerRequest: 1,
    commandTimeout: opts.commandTimeoutMs,
    // A call whose caller gave up (timed out: the packet got T00) must not run
    // later when the connection comes back: no resending of unanswered calls.
    autoResendUnfulfilledCommands: false,
  }
  if ('cluster' in t) {
    const { nodes, node } = clusterSeeds(t)
    const cluster = new Cluster(nodes, clusterOptions(node, { enableAutoPipelining: true, redisOptions: perNode }))
    cluster.on('error', () => {
      // node and connection errors surface through failed commands; the client follows the cluster by itself
    })
    await connectOrGiveUp(cluster)
    cluster.options.enableOfflineQueue = false
    return cluster
  }
  const redis = new Redis(t.url, { ...perNode, enableAutoPipelining: true, lazyConnect: true, retryStrategy })
  redis.on('error', () => {
    // connection errors surface through failed commands; ioredis reconnects by itself
  })
  await connectOrGiveUp(redis)
  redis.options.enableOfflineQueue = false
  return redis
}

/** Connects, or rejects and stops the client (left alone it would go on reconnecting, and keep the process alive). */
async function connectOrGiveUp(client: RedisClient): Promise<void> {
  try {
    await client.connect()
  } catch (err) {
    client.disconnect()
    throw err
  }
}

/**
 * Publishes on a channel the farm's subscribers listen to. Sharded pub/sub
 * (SPUBLISH) on one Redis as on a cluster: there a message travels only
 * within the shard that owns the channel's slot (docs/ARCHITECTURE.md).
 * Returns how many subscribers got it.
 */
export async function publish(client: RedisClient, channel: string, message: string | Buffer): Promise<number> {
  return client.spublish(channel, message) as Promise<number>
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
 * other command), by SSUBSCRIBE: see `publish`. On a cluster it is a
 * connection to the master that owns the channel's slot, which the client
 * moves to the new owner after a failover or a slot migration. ioredis
 * reconnects and resubscribes by itself; whoever subscribes learns of each
 * reconnect, since messages published during the gap are gone.
 */
export async function openSubscriber(target: string | RedisTarget, channel: string, opts: SubscriberOptions): Promise<Subscriber> {
  const t = asTarget(target)
  let connectedOnce = false
  const ready = () => {
    if (connectedOnce) opts.onReconnect?.()
  }
  const listen = (emitter: Redis | Cluster) => {
    emitter.on('error', () => {
      // connection errors: ioredis reconnects and resubscribes
    })
    if (opts.onMessage) {
      const onMessage = opts.onMessage
      emitter.on('smessage', (_channel: string, message: string) => onMessage(message))
    }
    if (opts.onMessageBuffer) {
      const onMessageBuffer = opts.onMessageBuffer
      emitter.on('smessageBuffer', (_channel: Buffer, message: Buffer) => onMessageBuffer(message))
    }
  }
  if ('cluster' in t) {
    const { nodes, node } = clusterSeeds(t)
    // shardedSubscribers: one subscriber connection per master that owns a subscribed slot, replaced
    // (and the channels subscribed again) when the slot map changes or the connection is lost
    const subscriber = new Cluster(nodes, clusterOptions(node, { shardedSubscribers: true }))
    listen(subscriber)
    // the subscriber connections were re-made: a message published meanwhile may be lost
    subscriber.on('subscribersReady', ready)
    subscriber.on('node error', () => undefined)
    await connectOrGiveUp(subscriber)
    await subscriber.ssubscribe(channel)
    connectedOnce = true
    return {
      async close() {
        subscriber.disconnect()
      },
    }
  }
  const subscriber = new Redis(t.url, { lazyConnect: true, retryStrategy })
  listen(subscriber)
  subscriber.on('ready', () => {
    ready()
    connectedOnce = true
  })
  await connectOrGiveUp(subscriber)
  await subscriber.ssubscribe(channel)
  return {
    async close() {
      await subscriber.quit().catch(() => undefined)
      subscriber.disconnect()
    },
  }
}

/** A connection subscribed to channels that come and go (see openChannelSubscriber). */
export interface ChannelSubscriber {
  /** Starts listening to `channel` (SSUBSCRIBE); resolves once Redis has it. */
  join(channel: string): Promise<void>
  /** Stops listening to `channel` (SUNSUBSCRIBE). */
  leave(channel: string): Promise<void>
  close(): Promise<void>
}

/**
 * One connection subscribed to any number of channels, added and dropped
 * while it runs (per-account feeds that exist only while someone listens),
 * by SSUBSCRIBE as openSubscriber: on a cluster one connection per master
 * that owns a subscribed slot. ioredis resubscribes after a reconnect; the
 * listeners learn of it, since messages published meanwhile are gone.
 */
export async function openChannelSubscriber(
  target: string | RedisTarget,
  opts: { onMessage: (channel: string, message: string) => void; onReconnect?: () => void },
): Promise<ChannelSubscriber> {
  const t = asTarget(target)
  let connectedOnce = false
  const ready = () => {
    if (connectedOnce) opts.onReconnect?.()
    connectedOnce = true
  }
  let subscriber: Redis | Cluster
  if ('cluster' in t) {
    const { nodes, node } = clusterSeeds(t)
    subscriber = new Cluster(nodes, clusterOptions(node, { shardedSubscribers: true }))
    subscriber.on('subscribersReady', ready)
    subscriber.on('node error', () => undefined)
  } else {
    subscriber = new Redis(t.url, { lazyConnect: true, retryStrategy })
    subscriber.on('ready', ready)
  }
  subscriber.on('error', () => {
    // connection errors: ioredis reconnects and resubscribes
  })
  subscriber.on('smessage', (channel: string, message: string) => opts.onMessage(channel, message))
  await connectOrGiveUp(subscriber)
  connectedOnce = true
  return {
    async join(channel) {
      await subscriber.ssubscribe(channel)
    },
    async leave(channel) {
      await subscriber.sunsubscribe(channel)
    },
    async close() {
      if (subscriber instanceof Redis) await subscriber.quit().catch(() => undefined)
      subscriber.disconnect()
    },
  }
}
