/**
 * Route announcements (CCP, the `ilp-protocol-ccp` encodings): the leader's
 * part. While this worker holds the leader lease, one tick at a time runs the
 * broadcaster (`ccp-broadcaster.ts`: the advertised table, route controls
 * applied, updates sent to `sendRoutes` accounts) and, every sweep, the
 * receiver (`ccp-receiver.ts`: learned routes expired, route control sent to
 * `receiveRoutes` accounts). Every worker answers the peers' messages with
 * `ccp-responder.ts`. See docs/ARCHITECTURE.md, "Route announcements (CCP)".
 */
import type { Logger } from 'pino'
import type { AccountRegistry } from '../accounts/registry.js'
import type { FarmConfig } from '../config/schema.js'
import { Repeater } from '../util/repeat.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import type { RedisClient } from '../store/redis.js'
import type { AddressMapper } from './address-mapper.js'
import { RouteBroadcaster } from './ccp-broadcaster.js'
import { tickStep } from './ccp-message.js'
import { RouteReceiver } from './ccp-receiver.js'
import { CcpStore } from './ccp-store.js'

export interface RouteAnnouncerOptions {
  config: FarmConfig
  /** Parents and peers are pinned: every worker has them at hand. */
  accounts: Pick<AccountRegistry, 'peek' | 'pinnedAccounts'>
  mapper: AddressMapper
  redis: RedisClient
  outgoing: OutgoingClient
  /** The worker's boot id: the leader lease names it. */
  bootId: string
  log: Logger
}

/** A leader duty: started when the lease is taken, stopped when it is lost or the worker closes. */
export class RouteAnnouncer {
  readonly broadcaster: RouteBroadcaster
  readonly receiver: RouteReceiver
  private readonly log: Logger
  private readonly tickMs: number
  private readonly sweepMs: number
  private leading = false
  private repeater: Repeater | undefined
  /** Starts and stops run one after the other (a lease lost and taken again quickly). */
  private transition: Promise<void> = Promise.resolve()
  private wanted = false
  private lastSweepAt = 0

  constructor(opts: RouteAnnouncerOptions) {
    const intervalMs = opts.config.routing.broadcastIntervalMs
    const store = new CcpStore(opts.redis, opts.config.redis.keyPrefix)
    this.log = opts.log
    this.tickMs = Math.max(20, Math.min(250, Math.floor(intervalMs / 4)))
    this.sweepMs = Math.min(1000, intervalMs)
    const { accounts, mapper, outgoing, log } = opts
    this.broadcaster = new RouteBroadcaster({
      ownAddress: opts.config.ilpAddress,
      accounts,
      mapper,
      store,
      outgoing,
      bootId: opts.bootId,
      intervalMs,
      tickMs: this.tickMs,
      log,
    })
    this.receiver = new RouteReceiver({ accounts, mapper, store, outgoing, intervalMs, log })
  }

  get isLeading(): boolean {
    return this.leading
  }

  /** Leader duties start (the lease was taken). */
  start(): void {
    this.wanted = true
    this.transition = this.transition.then(async () => {
      if (!this.wanted || this.leading) return
      try {
        await this.begin()
      } catch (err) {
        this.log.error({ err }, 'route announcements could not start; retrying on the next lease')
        await this.end()
      }
    })
  }

  /** Leader duties stop (lease lost or closing); a message being sent finishes first. */
  async stop(): Promise<void> {
    this.wanted = false
    this.transition = this.transition.then(() => this.end())
    await this.transition
  }

  private async begin(): Promise<void> {
    this.leading = true
    this.receiver.begin()
    this.lastSweepAt = 0
    await this.broadcaster.begin()
    this.repeater = new Repeater(this.tickMs, () => this.tick())
    void this.repeater.start()
  }

  private async end(): Promise<void> {
    this.leading = false
    this.broadcaster.end()
    const repeater = this.repeater
    this.repeater = undefined
    await repeater?.stop()
  }

  /** One leader tick: the broadcaster's work, then the receiver's once a sweep interval has passed. */
  async tick(): Promise<void> {
    if (!this.leading) return
    const now = Date.now()
    await this.broadcaster.tick(now)
    if (now - this.lastSweepAt >= this.sweepMs) {
      this.lastSweepAt = now
      await tickStep(this.log, 'maintain learned routes', () => this.receiver.maintain(Date.now()))
    }
  }
}
