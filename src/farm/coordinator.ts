import type { Logger } from 'pino'
import { Coordination, type LeaderDuty } from '../store/coordination.js'
import type { Ledger } from '../store/ledger.js'
import { Heartbeat } from './heartbeat.js'
import { LeaderLease } from './leader.js'
import { resolveOrphans } from './orphans.js'
import { type RefundHook, Sweeper } from './sweeper.js'

/** How often a worker drops from its owner index the accounts it has not used for as long (Ledger.pruneIndex). */
const INDEX_PRUNE_INTERVAL_MS = 60_000

export interface CoordinatorOptions {
  ledger: Ledger
  shard: number
  /** The supervisor's host id (`farm.hostId`); default Coordination's LOCAL_HOST_ID. */
  hostId?: string
  log: Logger
  heartbeatIntervalMs?: number
  heartbeatTtlMs?: number
  leaderLeaseMs?: number
  sweepIntervalMs?: number
  /** The sweeper refunded an entry of a dead worker (e.g. POST the reject to an async caller). */
  onRefund?: RefundHook
}

/**
 * One worker's part in the farm's crash safety: its heartbeat, its
 * bid for the leader lease, the leader duties while it holds it (the
 * sweeper), and the refund of its own orphans after each heartbeat.
 */
export class Coordinator {
  readonly coordination: Coordination
  readonly heartbeat: Heartbeat
  readonly lease: LeaderLease
  readonly sweeper: Sweeper
  private readonly onReconnect: () => void
  private readonly duties: LeaderDuty[] = []

  constructor(private readonly opts: CoordinatorOptions) {
    const { ledger, log } = opts
    this.coordination = new Coordination(ledger.redis, ledger.keys, opts.hostId)
    this.heartbeat = new Heartbeat({
      coordination: this.coordination,
      shard: opts.shard,
      bootId: ledger.bootId,
      log,
      intervalMs: opts.heartbeatIntervalMs,
      ttlMs: opts.heartbeatTtlMs,
      afterBeat: () => this.auditOwnPackets(),
      inFlight: () => ledger.own.openCount,
    })
    this.sweeper = new Sweeper({
      ledger,
      coordination: this.coordination,
      log,
      intervalMs: opts.sweepIntervalMs,
      heartbeatIntervalMs: this.heartbeat.intervalMs,
      heartbeatTtlMs: this.heartbeat.ttlMs,
      onRefund: opts.onRefund,
    })
    this.lease = new LeaderLease({
      coordination: this.coordination,
      bootId: ledger.bootId,
      log,
      ttlMs: opts.leaderLeaseMs,
      renewIntervalMs: this.heartbeat.intervalMs,
      onAcquire: () => {
        void this.sweeper.start()
        for (const duty of this.duties) duty.start()
      },
      onLose: () => {
        void this.sweeper.stop()
        for (const duty of this.duties) void duty.stop()
      },
    })
    // Redis may have come back from an older append-only file (or failed over): look for orphans among all this worker's records.
    this.onReconnect = () => {
      ledger.own.fullAuditNeeded = true
    }
  }

  get bootId(): string {
    return this.opts.ledger.bootId
  }

  get isLeader(): boolean {
    return this.lease.isLeader
  }

  /** The sweeper's refund hook; may be set after start. */
  set onRefund(hook: RefundHook | undefined) {
    this.sweeper.onRefund = hook
  }

  get onRefund(): RefundHook | undefined {
    return this.sweeper.onRefund
  }

  /** Adds a leader duty (route announcements); call before start(). */
  addLeaderDuty(duty: LeaderDuty): void {
    this.duties.push(duty)
  }

  /** First heartbeat and lease bid (awaited, so the worker is known before it serves), then on their timers. */
  async start(): Promise<void> {
    this.opts.ledger.redis.on('ready', this.onReconnect)
    // a cluster stays 'ready' through a failover: a master lost or added says the same
    this.opts.ledger.redis.on('-node', this.onReconnect)
    this.opts.ledger.redis.on('+node', this.onReconnect)
    await this.heartbeat.start()
    await this.lease.start()
  }

  /** Leader duties end and the lease is released; the heartbeat is deleted (the farm sees this worker gone at once). */
  async stop(): Promise<void> {
    this.opts.ledger.redis.off('ready', this.onReconnect)
    this.opts.ledger.redis.off('-node', this.onReconnect)
    this.opts.ledger.redis.off('+node', this.onReconnect)
    await this.lease.stop()
    await Promise.all(this.duties.map((d) => d.stop()))
    await this.sweeper.close()
    await this.heartbeat.stop()
  }

  private lastPrune = Date.now()

  private async auditOwnPackets(): Promise<void> {
    if (Date.now() - this.lastPrune >= INDEX_PRUNE_INTERVAL_MS) {
      this.lastPrune = Date.now()
      await this.opts.ledger.pruneIndex(INDEX_PRUNE_INTERVAL_MS)
    }
    if (!this.opts.ledger.own.auditNeeded) return
    const report = await resolveOrphans(this.opts.ledger)
    if (report.refunded > 0 || report.credited > 0) this.opts.log.warn(report, 'settled packets of this worker whose outcome was lost')
  }
}
