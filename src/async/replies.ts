import { randomUUID } from 'node:crypto'
import type { Logger } from 'pino'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import { type NextHopTransport, OutgoingError, type RoutedPacket } from '../packet/ports.js'
import { IlpRejection } from '../packet/reject.js'
import { Keys } from '../store/keys.js'
import { openSubscriber, publish, type RedisClient, type RedisTarget, type Subscriber } from '../store/redis.js'

/** How a callback carrying a reply was taken. */
export type CallbackAcceptance =
  /** Handed to the live owner of the request (HTTP 200). */
  | 'delivered'
  /** No such request in flight: unknown, already answered, or expired; nothing changed (HTTP 400). */
  | 'unknown'
  /** The owner's channel has no listener right now; the request stays open for a retry (HTTP 503). */
  | 'owner-unreachable'

interface Waiter {
  readonly promise: Promise<Buffer>
  deliver(reply: Buffer): void
  fail(err: Error): void
  readonly done: () => boolean
}

export interface AsyncRepliesOptions {
  /** The worker's command connection. */
  redis: RedisClient
  /** For the subscriber connection (a subscribed connection can run no other command). */
  redisTarget: string | RedisTarget
  keys: Keys
  /** This worker process's id, `<shard>-<random>`, new at every start: the worker's boot id. */
  ownerId: string
  outgoing: OutgoingClient
  log: Logger
  /** `http.publicUrl`; unset: set from the listening address by setDefaultPublicUrl. */
  publicUrl: string | undefined
  /** Some account has `outgoing.mode: async`: warn when the callback URL cannot work. */
  sendsAsync: boolean
}

/**
 * Outbound async ILP-over-HTTP and the farm's callback endpoint.
 *
 * Sending: a fresh Request-Id, `{prefix}req:<id>` → this worker's owner id
 * (expiring with the packet), then the POST, which must answer 202; the
 * packet then waits for its reply until its outgoing expiry.
 *
 * Receiving: a callback can land on any worker. That worker takes the
 * `req:` key with GETDEL (so a request is answered once), and hands the
 * reply to the owner: directly if it is itself, else by PUBLISH on the
 * owner's channel, to which every worker subscribes on its own connection.
 */
export class AsyncReplies implements NextHopTransport {
  readonly ownerId: string
  private readonly redis: RedisClient
  private readonly keys: Keys
  private readonly outgoing: OutgoingClient
  private readonly log: Logger
  private readonly channel: string
  private readonly waiting = new Map<string, Waiter>()
  private subscriber: Subscriber | undefined
  private publicUrl: string | undefined
  private readonly sendsAsync: boolean

  private constructor(opts: AsyncRepliesOptions) {
    this.redis = opts.redis
    this.keys = opts.keys
    this.outgoing = opts.outgoing
    this.log = opts.log
    this.ownerId = opts.ownerId
    this.channel = opts.keys.replyChannel(opts.ownerId)
    this.publicUrl = opts.publicUrl?.replace(/\/+$/, '')
    this.sendsAsync = opts.sendsAsync
  }

  /** Connects the subscriber and subscribes to this worker's channel. */
  static async start(opts: AsyncRepliesOptions): Promise<AsyncReplies> {
    const replies = new AsyncReplies(opts)
    // while it reconnects, PUBLISH to this channel reaches no one: the sender answers 503 and the next hop retries
    replies.subscriber = await openSubscriber(opts.redisTarget, replies.channel, { onMessageBuffer: (message) => replies.onMessage(message) })
    return replies
  }

  /** The default `http.publicUrl`: the address the worker listens on. */
  setDefaultPublicUrl(url: string): void {
    if (this.publicUrl !== undefined) return
    this.publicUrl = url.replace(/\/+$/, '')
    const host = new URL(this.publicUrl).hostname
    if (this.sendsAsync && (host === '0.0.0.0' || host === '[::]')) {
      this.log.warn({ publicUrl: this.publicUrl }, 'async next hops will get a callback URL on a wildcard address: set http.publicUrl')
    }
  }

  /** Where a next hop POSTs its replies to async prepares the farm sent it. */
  callbackUrl(accountId: string): string | undefined {
    return this.publicUrl === undefined ? undefined : `${this.publicUrl}/accounts/${encodeURIComponent(accountId)}/ilp/callbacks`
  }

  /** Async prepares sent and still waiting for their reply. */
  get inFlight(): number {
    return this.waiting.size
  }

  /** The packet core's async transport: the request names the packet's record, which a reply finds it by. */
  forward(packet: RoutedPacket, bytes: Buffer): Promise<Buffer> {
    return this.send(packet.nextHop, bytes, packet.outExpiresAt.getTime(), Keys.hotSetField(packet.from.id, packet.packetId))
  }

  /**
   * Sends a prepare to an async next hop and waits for its reply until
   * `expiresAtMs`. Rejects with OutgoingError ('timeout': R00, 'unreachable':
   * T01) or IlpRejection (T00: Redis or the farm's own URL unavailable).
   */
  async send(nextHop: AccountConfig, packet: Buffer, expiresAtMs: number, hotSetField: string): Promise<Buffer> {
    const callbackUrl = this.callbackUrl(nextHop.id)
    if (callbackUrl === undefined) throw new IlpRejection('T00', 'internal error: no public URL for async callbacks')
    const requestId = randomUUID()
    const key = this.keys.asyncRequest(requestId)
    const waiter = this.wait(requestId, expiresAtMs)
    try {
      await this.redis.set(key, `${this.ownerId}|${nextHop.id}|${expiresAtMs}|${hotSetField}`, 'PX', Math.max(1, expiresAtMs - Date.now()))
    } catch (err) {
      this.log.error({ err }, 'could not record an async request')
      waiter.fail(new IlpRejection('T00', 'internal error: balance store unavailable'))
      return waiter.promise
    }
    try {
      await this.outgoing.sendAsync(nextHop, packet, expiresAtMs - Date.now(), {
        prefer: 'respond-async',
        'request-id': requestId,
        'callback-url': callbackUrl,
      })
    } catch (err) {
      // A reply that already came back wins (the 202 may trail its own callback).
      if (!waiter.done()) {
        waiter.fail(err instanceof Error ? err : new Error(String(err)))
        this.redis.del(key).catch(() => undefined)
      }
    }
    return waiter.promise
  }

  private wait(requestId: string, expiresAtMs: number): Waiter {
    let done = false
    let resolve!: (reply: Buffer) => void
    let reject!: (err: Error) => void
    const promise = new Promise<Buffer>((res, rej) => {
      resolve = res
      reject = rej
    })
    // whoever settles it first, the caller awaits it later: never an unhandled rejection
    promise.catch(() => undefined)
    const finish = () => {
      done = true
      clearTimeout(timer)
      this.waiting.delete(requestId)
    }
    const timeoutMs = Math.max(0, expiresAtMs - Date.now())
    const timer = setTimeout(() => {
      if (done) return
      finish()
      reject(new OutgoingError('timeout', `no reply from the next hop within ${timeoutMs} ms`))
    }, timeoutMs)
    const waiter: Waiter = {
      promise,
      done: () => done,
      deliver(reply) {
        if (done) return
        finish()
        resolve(reply)
      },
      fail(err) {
        if (done) return
        finish()
        reject(err)
      },
    }
    this.waiting.set(requestId, waiter)
    return waiter
  }

  /**
   * A callback from `accountId` with the reply to `requestId`. The request is
   * consumed atomically (GETDEL): a second callback for it finds nothing. It
   * is put back only when it cannot be handed over (wrong account, or owner
   * not listening), so a retry still can.
   */
  async accept(accountId: string, requestId: string, reply: Buffer): Promise<CallbackAcceptance> {
    const key = this.keys.asyncRequest(requestId)
    const value = await this.redis.getdel(key)
    if (value === null) return 'unknown'
    const [ownerId, account, expiresAt] = value.split('|', 3)
    const expiresAtMs = Number(expiresAt)
    const putBack = () => this.putBack(key, value, expiresAtMs)
    if (account !== accountId) {
      // another peer's request: not ours to answer, and it stays open for its real next hop
      await putBack()
      return 'unknown'
    }
    if (!(Date.now() <= expiresAtMs) || ownerId === undefined) return 'unknown'
    if (ownerId === this.ownerId) {
      const waiter = this.waiting.get(requestId)
      if (!waiter) return 'unknown'
      waiter.deliver(reply)
      return 'delivered'
    }
    let listeners: number
    try {
      listeners = await publish(this.redis, this.keys.replyChannel(ownerId), frame(requestId, reply))
    } catch (err) {
      // Taken but not handed over: put it back, so the retry the 503 asks for can still deliver it.
      await putBack().catch(() => undefined)
      throw err
    }
    if (listeners === 0) {
      await putBack()
      return 'owner-unreachable'
    }
    return 'delivered'
  }

  private async putBack(key: string, value: string, expiresAtMs: number): Promise<void> {
    const ttl = expiresAtMs - Date.now()
    if (ttl > 0) await this.redis.set(key, value, 'PX', ttl, 'NX')
  }

  private onMessage(message: Buffer): void {
    const parsed = unframe(message)
    if (!parsed) {
      this.log.warn('unreadable message on the reply channel')
      return
    }
    const waiter = this.waiting.get(parsed.requestId)
    // gone: the packet timed out (or failed) in between; the reply changes nothing
    if (!waiter) this.log.debug({ requestId: parsed.requestId }, 'reply for an async request no longer waiting')
    else waiter.deliver(parsed.reply)
  }

  /** Unsubscribes; packets still waiting fail as if the next hop never answered. */
  async close(): Promise<void> {
    for (const waiter of [...this.waiting.values()]) waiter.fail(new OutgoingError('timeout', 'worker closing'))
    const subscriber = this.subscriber
    this.subscriber = undefined
    await subscriber?.close()
  }
}

/** Channel message: request id length (1 byte), request id (ASCII), then the reply packet. */
function frame(requestId: string, reply: Buffer): Buffer {
  const id = Buffer.from(requestId, 'latin1')
  return Buffer.concat([Buffer.from([id.length]), id, reply])
}

function unframe(message: Buffer): { requestId: string; reply: Buffer } | undefined {
  const length = message[0]
  if (length === undefined || message.length < 1 + length) return undefined
  return { requestId: message.subarray(1, 1 + length).toString('latin1'), reply: message.subarray(1 + length) }
}
