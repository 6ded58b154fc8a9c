import type { Logger } from 'pino'
import type { Coordination } from '../store/coordination.js'
import { Repeater } from '../util/repeat.js'

export interface LeaderLeaseOptions {
  coordination: Coordination
  bootId: string
  log: Logger
  /** Lease TTL: a dead leader is replaced this long after its last renewal at most, plus one renew interval (default 5000 ms). */
  ttlMs?: number
  /** How often every worker tries to take or renew the lease (default 1000 ms). */
  renewIntervalMs?: number
  /** Leader duties start: called once each time this worker becomes leader. */
  onAcquire?: () => void
  /** Leader duties stop: called once each time it stops being leader (lost, expired, or stop()). */
  onLose?: () => void
}

/**
 * `{prefix}leader` = boot id of the one worker that runs the farm-wide duties.
 * Every worker tries SET NX PX (through lua/coordination/lease.lua) every
 * renew interval; the holder's call extends it instead. A leader that cannot
 * renew (Redis unreachable) gives its duties up before its lease could have
 * expired, so two leaders never act at once as far as the clocks agree (and
 * the sweeper's refunds are safe even if they did: each is guarded).
 */
export class LeaderLease {
  readonly ttlMs: number
  readonly renewIntervalMs: number
  private readonly repeater: Repeater
  private leading = false
  /** Local time the last successful renewal was sent. */
  private renewedAt = 0

  constructor(private readonly opts: LeaderLeaseOptions) {
    this.ttlMs = opts.ttlMs ?? 5000
    this.renewIntervalMs = opts.renewIntervalMs ?? 1000
    if (this.ttlMs <= this.renewIntervalMs) throw new Error('the lease TTL must be longer than its renew interval')
    this.repeater = new Repeater(this.renewIntervalMs, () => this.tick())
  }

  get isLeader(): boolean {
    return this.leading
  }

  start(): Promise<void> {
    return this.repeater.start()
  }

  /** Stops trying; a leader gives its duties up and releases the lease so another takes over at once. */
  async stop(): Promise<void> {
    await this.repeater.stop()
    if (!this.leading) return
    this.lose('stopping')
    await this.opts.coordination.releaseLease(this.opts.bootId).catch((err: unknown) => {
      this.opts.log.warn({ err }, 'could not release the leader lease; it expires by itself')
    })
  }

  private async tick(): Promise<void> {
    const sentAt = Date.now()
    let holder: string
    try {
      holder = await this.opts.coordination.acquireLease(this.opts.bootId, this.ttlMs)
    } catch (err) {
      // Keep the duties only while the lease surely still runs.
      if (this.leading && Date.now() - this.renewedAt >= this.ttlMs - this.renewIntervalMs) {
        this.opts.log.warn({ err }, 'cannot renew the leader lease')
        this.lose('could not renew the lease')
      }
      return
    }
    if (holder === this.opts.bootId) {
      this.renewedAt = sentAt
      if (!this.leading) {
        this.leading = true
        this.opts.log.info({ bootId: this.opts.bootId }, 'leader lease taken: this worker runs the leader duties')
        this.call(this.opts.onAcquire)
      }
    } else if (this.leading) {
      this.lose(`the lease is held by ${holder || 'nobody'}`)
    }
  }

  private lose(reason: string): void {
    this.leading = false
    this.opts.log.info({ reason }, 'leader duties stopped')
    this.call(this.opts.onLose)
  }

  private call(hook: (() => void) | undefined): void {
    try {
      hook?.()
    } catch (err) {
      this.opts.log.error({ err }, 'leader hook failed')
    }
  }
}
