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

/** What one subscription of a process asks for on the shared connection. */
interface Listener {
  onMessage?: ((channel: string, message: string) => void) | undefined
  onMessageBuffer?: ((message: Buffer) => void) | undefined
  onReconnect?: (() => void) | undefined
}

/**
 * The one subscribed connection of a process to a target (on a cluster, one
 * per master that owns a subscribed slot), shared by all its subscriptions:
 * the worker's async replies, the account and route changes, and payment
 * feeds. One connection set instead of one per subscription also means one
 * slot-map check instead of several: ioredis compares the whole 16384-slot
 * map of a sharded subscriber at every refresh (every 5 s, and after a
 * failover or a migration), about 10 ms of event loop each time.
 */
class SharedSubscriber {
  private readonly channels = new Map<string, Set<Listener>>()
  /** Each channel's SSUBSCRIBE, which a later listener of the channel waits for too. */
  private readonly subscribing = new Map<string, Promise<void>>()
  private holders = 0
  private connectedOnce = false
  readonly connecting: Promise<void>

  constructor(
    private readonly key: string,
    private readonly client: Redis | Cluster,
  ) {
    client.on('error', () => {
      // connection errors: ioredis reconnects and resubscribes
    })
    // the subscriber connections were re-made: a message published meanwhile may be lost
    client.on(client instanceof Redis ? 'ready' : 'subscribersReady', () => this.reconnected())
    if (client instanceof Cluster) client.on('node error', () => undefined)
    // smessageBuffer only: ioredis makes the text form for 'smessage' listeners alone
    client.on('smessageBuffer', (channel: Buffer, message: Buffer) => this.deliver(channel.toString(), message))
    this.connecting = connectOrGiveUp(client).then(() => {
      this.connectedOnce = true
    })
  }

  private reconnected(): void {
    if (!this.connectedOnce) return
    for (const listeners of [...this.channels.values()]) for (const l of [...listeners]) l.onReconnect?.()
  }

  private deliver(channel: string, message: Buffer): void {
    const listeners = this.channels.get(channel)
    if (!listeners) return
    let text: string | undefined
    for (const l of [...listeners]) {
      if (l.onMessageBuffer) l.onMessageBuffer(message)
      if (l.onMessage) l.onMessage(channel, (text ??= message.toString()))
    }
  }

  /** One more holder of the connection (a subscription, or a set of them): see release(). */
  retain(): void {
    this.holders++
  }

  /** A holder is done: the connection closes after the process's last. */
  async release(): Promise<void> {
    if (--this.holders > 0) return
    if (shared.get(this.key) === this) shared.delete(this.key)
    if (this.client instanceof Redis) await this.client.quit().catch(() => undefined)
    this.client.disconnect()
  }

  /** Adds a listener to `channel`, resolving once Redis has the channel subscribed (SSUBSCRIBE with its first listener). */
  async add(channel: string, listener: Listener): Promise<void> {
    let listeners = this.channels.get(channel)
    let subscribed = this.subscribing.get(channel)
    if (!listeners || !subscribed) {
      this.channels.set(channel, (listeners = new Set()))
      subscribed = this.connecting.then(async () => {
        await this.client.ssubscribe(channel)
      })
      this.subscribing.set(channel, subscribed)
    }
    listeners.add(listener)
    try {
      await subscribed
    } catch (err) {
      await this.remove(channel, listener)
      throw err
    }
  }

  /** Drops a listener: SUNSUBSCRIBE after the channel's last. */
  async remove(channel: string, listener: Listener): Promise<void> {
    const listeners = this.channels.get(channel)
    if (!listeners?.delete(listener) || listeners.size > 0) return
    this.channels.delete(channel)
    this.subscribing.delete(channel)
    const unsubscribing = this.client.sunsubscribe(channel).catch(() => undefined)
    // while Redis is away the command waits in the offline queue: a close must not wait with it
    if (this.client.status === 'ready') await unsubscribing
  }
}

/** The process's shared subscriber of each target (by its description with passwords). */
const shared = new Map<string, SharedSubscriber>()

function sharedSubscriber(target: string | RedisTarget): SharedSubscriber {
  const t = asTarget(target)
  const key = JSON.stringify(t)
  let subscriber = shared.get(key)
  if (!subscriber) {
    let client: Redis | Cluster
    if ('cluster' in t) {
      const { nodes, node } = clusterSeeds(t)
      // shardedSubscribers: one subscriber connection per master that owns a subscribed slot, replaced
      // (and the channels subscribed again) when the slot map changes or the connection is lost
      client = new Cluster(nodes, clusterOptions(node, { shardedSubscribers: true }))
    } else {
      client = new Redis(t.url, { lazyConnect: true, retryStrategy })
    }
    subscriber = new SharedSubscriber(key, client)
    shared.set(key, subscriber)
    // a connection that never came up is not kept for the next subscription
    subscriber.connecting.catch(() => {
      if (shared.get(key) === subscriber) shared.delete(key)
    })
  }
  return subscriber
}

/**
 * A subscription to one channel, by SSUBSCRIBE: see `publish`. All the
 * process's subscriptions to a target share one connection (a subscribed
 * connection can run no other command); on a cluster that is one connection
 * per master that owns a subscribed channel's slot, which the client moves
 * to the new owner after a failover or a slot migration. ioredis reconnects
 * and resubscribes by itself; every subscriber learns of each reconnect,
 * since messages published during the gap are gone.
 */
export async function openSubscriber(target: string | RedisTarget, channel: string, opts: SubscriberOptions): Promise<Subscriber> {
  const { onMessage, onMessageBuffer, onReconnect } = opts
  const listener: Listener = { onMessage: onMessage && ((_channel, message) => onMessage(message)), onMessageBuffer, onReconnect }
  const subscriber = sharedSubscriber(target)
  subscriber.retain()
  try {
    await subscriber.add(channel, listener)
  } catch (err) {
    await subscriber.release()
    throw err
  }
  let closed = false
  return {
    async close() {
      // once only: a second release would take another subscription's hold on the connection
      if (closed) return
      closed = true
      await subscriber.remove(channel, listener)
      await subscriber.release()
    },
  }
}

/** Subscriptions to channels that come and go (see openChannelSubscriber). */
export interface ChannelSubscriber {
  /** Starts listening to `channel` (SSUBSCRIBE); resolves once Redis has it. */
  join(channel: string): Promise<void>
  /** Stops listening to `channel` (SUNSUBSCRIBE). */
  leave(channel: string): Promise<void>
  close(): Promise<void>
}

/**
 * Subscriptions to any number of channels, added and dropped while they run
 * (per-account feeds that exist only while someone listens), on the
 * process's shared subscriber as openSubscriber. The listener learns of each
 * reconnect, since messages published meanwhile are gone.
 */
export async function openChannelSubscriber(
  target: string | RedisTarget,
  opts: { onMessage: (channel: string, message: string) => void; onReconnect?: () => void },
): Promise<ChannelSubscriber> {
  const subscriber = sharedSubscriber(target)
  let reconnectNotice: Listener | undefined
  // one listener per channel; onReconnect rides on one of them, since each channel's listener would call it
  const listenerOf = new Map<string, Listener>()
  subscriber.retain()
  try {
    await subscriber.connecting
  } catch (err) {
    await subscriber.release()
    throw err
  }
  const leave = async (channel: string): Promise<void> => {
    const listener = listenerOf.get(channel)
    if (!listener) return
    listenerOf.delete(channel)
    await subscriber.remove(channel, listener)
    if (reconnectNotice === listener) {
      reconnectNotice = undefined
      // the notice moves to another channel still joined
      const next = listenerOf.values().next().value
      if (next) {
        next.onReconnect = opts.onReconnect
        reconnectNotice = next
      }
    }
  }
  let closed = false
  return {
    async join(channel) {
      if (listenerOf.has(channel)) return
      const listener: Listener = { onMessage: opts.onMessage }
      if (!reconnectNotice) {
        listener.onReconnect = opts.onReconnect
        reconnectNotice = listener
      }
      listenerOf.set(channel, listener)
      try {
        await subscriber.add(channel, listener)
      } catch (err) {
        listenerOf.delete(channel)
        if (reconnectNotice === listener) reconnectNotice = undefined
        throw err
      }
    },
    leave,
    async close() {
      if (closed) return
      closed = true
      await Promise.all([...listenerOf.keys()].map(leave))
      await subscriber.release()
    },
  }
}
