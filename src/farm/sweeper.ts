import type { Logger } from 'pino'
import type { Coordination, LiveWorker } from '../store/coordination.js'
import { type HotSetEntry, type Ledger, parseHotSetEntry } from '../store/ledger.js'
import { Repeater } from './repeat.js'

/** Called once for each entry the sweeper refunded (e.g. to send the reject to an async caller's callback). */
export type RefundHook = (entry: HotSetEntry) => void

export interface SweeperOptions {
  ledger: Ledger
  coordination: Coordination
  log: Logger
  /** Default 1000 ms. */
  intervalMs?: number
  /** The heartbeat settings: a worker whose beat is missing counts as dead only after the sweeper
   *  has seen Redis answer for heartbeatTtlMs + heartbeatIntervalMs (live workers beat again after an outage). */
  heartbeatTtlMs?: number
  heartbeatIntervalMs?: number
  /** Entries read per Redis call (default 500). */
  batchSize?: number
  /** Most entries examined in one sweep (default 20000); the rest wait for the next. */
  maxPerSweep?: number
  onRefund?: RefundHook
}

export interface SweepReport {
  /** Refunded now (one reject call each). */
  refunded: number
  /** Expired, but their owner is alive: left to it. */
  liveOwner: number
  /** Expired, owner's heartbeat missing, but the sweeper has not watched long enough to call it dead. */
  waiting: number
  /** Already settled by someone else when the refund ran. */
  gone: number
  failed: number
}

/**
 * Leader duty: refunds the hotSet entries whose owner process is gone, once
 * they have expired. An entry is the dead owner's when the heartbeat of its
 * shard is missing or names another boot id (the shard was restarted). Each
 * refund is one `reject` call guarded by the owner and expiry the sweeper
 * read, so it can never refund a newer entry under the same field. Entries
 * of a live owner are left to it (its Resolver retries, and it refunds its
 * own orphans itself). After a full outage (workers and Redis restarted from
 * the append-only file) the same sweep resolves everything left over.
 */
export class Sweeper {
  readonly intervalMs: number
  private readonly graceMs: number
  private readonly batchSize: number
  private readonly maxPerSweep: number
  private readonly repeater: Repeater
  /** Local time since which every call to Redis has succeeded, undefined after a failure. */
  private healthySince: number | undefined
  onRefund: RefundHook | undefined

  constructor(private readonly opts: SweeperOptions) {
    this.intervalMs = opts.intervalMs ?? 1000
    this.graceMs = (opts.heartbeatTtlMs ?? 3000) + (opts.heartbeatIntervalMs ?? 1000)
    this.batchSize = opts.batchSize ?? 500
    this.maxPerSweep = opts.maxPerSweep ?? 20_000
    this.onRefund = opts.onRefund
    this.repeater = new Repeater(this.intervalMs, () => this.tick())
    opts.ledger.redis.on('close', this.onConnectionLost)
  }

  private readonly onConnectionLost = () => {
    this.healthySince = undefined
  }

  start(): Promise<void> {
    this.healthySince = undefined
    return this.repeater.start()
  }

  async stop(): Promise<void> {
    await this.repeater.stop()
  }

  /** stop() and forget the Redis connection's events. */
  async close(): Promise<void> {
    await this.stop()
    this.opts.ledger.redis.off('close', this.onConnectionLost)
  }

  private async tick(): Promise<void> {
    try {
      const report = await this.sweep()
      if (report.refunded > 0 || report.failed > 0) this.opts.log.info(report, 'sweeper refunded expired packets of dead workers')
    } catch (err) {
      this.opts.log.warn({ err }, 'sweep failed (Redis unreachable?); next one in %d ms', this.intervalMs)
    }
  }

  /** One sweep over the entries expired by `now`. */
  async sweep(now = Date.now()): Promise<SweepReport> {
    try {
      return await this.sweepExpired(now)
    } catch (err) {
      this.healthySince = undefined
      throw err
    }
  }

  private async sweepExpired(now: number): Promise<SweepReport> {
    const { ledger, coordination } = this.opts
    const report: SweepReport = { refunded: 0, liveOwner: 0, waiting: 0, gone: 0, failed: 0 }
    const live: Map<number, LiveWorker> = await coordination.liveWorkers()
    this.healthySince ??= Date.now()
    const missingMeansDead = Date.now() - this.healthySince >= this.graceMs
    let offset = 0
    let examined = 0
    while (examined < this.maxPerSweep) {
      const fields = await ledger.redis.zrangebyscore(ledger.keys.hotSetExpiry, '-inf', now, 'LIMIT', offset, this.batchSize)
      if (fields.length === 0) break
      examined += fields.length
      const values = await ledger.redis.hmget(ledger.keys.hotSet, ...fields)
      const refunds: Array<Promise<void>> = []
      let left = 0
      fields.forEach((field, i) => {
        const value = values[i]
        if (value === null || value === undefined) return // settled since the range was read
        const entry = parseHotSetEntry(field, value)
        const alive = live.get(entry.shard)
        if (alive && alive.bootId === entry.bootId) {
          report.liveOwner++
          left++
          return
        }
        if (!alive && !missingMeansDead) {
          report.waiting++
          left++
          return
        }
        refunds.push(this.refund(entry, report))
      })
      await Promise.all(refunds)
      // Refunded entries left the index; the ones left stay in front.
      offset += left
      if (fields.length < this.batchSize) break
    }
    return report
  }

  private async refund(entry: HotSetEntry, report: SweepReport): Promise<void> {
    let outcome
    try {
      outcome = await this.opts.ledger.reject(entry.incomingAccount, entry.packetId, entry.outgoingAccount, {
        bootId: entry.bootId,
        expiresAtMs: entry.expiresAtMs,
      })
    } catch (err) {
      report.failed++
      this.opts.log.warn({ err, incomingAccount: entry.incomingAccount, packetId: entry.packetId }, 'sweeper could not refund a packet')
      return
    }
    if (outcome === 'gone') {
      report.gone++
      return
    }
    report.refunded++
    try {
      this.onRefund?.(entry)
    } catch (err) {
      this.opts.log.error({ err }, 'onRefund hook failed')
    }
  }
}
