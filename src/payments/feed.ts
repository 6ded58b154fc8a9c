import type { Keys } from '../store/keys.js'
import { type ChannelSubscriber, openChannelSubscriber, type RedisTarget } from '../store/redis.js'

/** A listener of one account's payment events: each entry as stored (JSON); `gap` when some may have been missed. */
export interface FeedListener {
  entry(json: string): void
  gap(): void
}

/** Why a listener was not taken: too many on this account or this worker. */
export class FeedFullError extends Error {
  override readonly name = 'FeedFullError'
}

export interface FeedLimits {
  /** Listeners of one account on one worker. */
  perAccount: number
  /** Listeners on one worker. */
  total: number
}

/**
 * The accounts' payment events as they happen (lua/payments/record.lua
 * publishes each history change on the account's channel, in its slot):
 * one subscriber connection per worker, subscribed to an account's channel
 * only while someone on this worker listens to it, so nothing costs anything
 * per account otherwise.
 */
export class PaymentFeed {
  private readonly listeners = new Map<string, Set<FeedListener>>()
  private count = 0

  private constructor(
    private readonly keys: Keys,
    private readonly limits: FeedLimits,
    private subscriber: ChannelSubscriber | undefined,
  ) {}

  static async open(target: string | RedisTarget, keys: Keys, limits: FeedLimits): Promise<PaymentFeed> {
    const feed = new PaymentFeed(keys, limits, undefined)
    feed.subscriber = await openChannelSubscriber(target, {
      onMessage: (channel, message) => feed.listeners.get(channel)?.forEach((l) => l.entry(message)),
      onReconnect: () => feed.listeners.forEach((set) => set.forEach((l) => l.gap())),
    })
    return feed
  }

  /** Listens to `accountId`'s events from now on; resolves with the way to stop, once subscribed. */
  async listen(accountId: string, listener: FeedListener): Promise<() => Promise<void>> {
    const channel = this.keys.paymentEvents(accountId)
    let set = this.listeners.get(channel)
    if ((set?.size ?? 0) >= this.limits.perAccount) throw new FeedFullError(`at most ${this.limits.perAccount} listeners of one account per worker`)
    if (this.count >= this.limits.total) throw new FeedFullError(`at most ${this.limits.total} listeners per worker`)
    if (set === undefined) {
      set = new Set()
      this.listeners.set(channel, set)
    }
    set.add(listener)
    this.count++
    if (set.size === 1) await this.subscriber!.join(channel)
    let stopped = false
    return async () => {
      if (stopped) return
      stopped = true
      this.count--
      set.delete(listener)
      if (set.size === 0 && this.listeners.get(channel) === set) {
        this.listeners.delete(channel)
        await this.subscriber!.leave(channel).catch(() => undefined)
      }
    }
  }

  get listenerCount(): number {
    return this.count
  }

  async close(): Promise<void> {
    this.listeners.clear()
    await this.subscriber?.close()
  }
}
