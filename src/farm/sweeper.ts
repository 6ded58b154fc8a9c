import type { Logger } from 'pino'
import type { Coordination } from '../store/coordination.js'
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
  /** Entries read per Redis call (HSCAN COUNT, default 500). */
  batchSize?: number
  /** Most entries examined in one sweep (default 20000); a scan goes on where it stopped at the next. */
  maxPerSweep?: number
  /** A full scan of the hotSet at least this often even when nothing changed (default 60000 ms). */
  fullScanIntervalMs?: number
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
 *
 * The hotSet has no expiry index (it would cost every packet two more writes):
 * the sweeper finds the entries of dead owners by scanning it (HSCAN), and
 * only when some may have appeared: when it starts, when the workers it sees
 * change (a boot id gone or replaced, a shard appearing or losing its
 * heartbeat), after its Redis connection was lost (Redis may have come back
 * from an older append-only file), and at least every `fullScanIntervalMs`.
 * The entries of dead owners a scan finds that cannot be refunded yet (not
 * expired, or a missing heartbeat not yet taken for death) are kept in
 * memory and refunded by the following sweeps once they can be, without
 * scanning again. While the workers stay the same, a sweep costs two reads.
 */
export class Sweeper {
  readonly intervalMs: number
  private readonly graceMs: number
  private readonly batchSize: number
  private readonly maxPerSweep: number
  private readonly fullScanIntervalMs: number
  private readonly repeater: Repeater
  /** Local time since which every call to Redis has succeeded, undefined after a failure. */
  private healthySince: number | undefined
  /** A scan of the whole hotSet is due (start, workers changed, connection lost). */
  private scanDue = true
  /** HSCAN cursor of the scan in progress; undefined when none is. */
  private cursor: string | undefined
  /** The workers as seen when the last scan started: shard → boot id ('' for no heartbeat). */
  private view: string | undefined
  private lastScanAt = -Infinity
  /** Entries of owners that were not live when seen, not refunded yet: field → entry. */
  private readonly pending = new Map<string, HotSetEntry>()
  onRefund: RefundHook | undefined

  constructor(private readonly opts: SweeperOptions) {
    this.intervalMs = opts.intervalMs ?? 1000
    this.graceMs = (opts.heartbeatTtlMs ?? 3000) + (opts.heartbeatIntervalMs ?? 1000)
    this.batchSize = opts.batchSize ?? 500
    this.maxPerSweep = opts.maxPerSweep ?? 20_000
    this.fullScanIntervalMs = opts.fullScanIntervalMs ?? 60_000
    this.onRefund = opts.onRefund
    this.repeater = new Repeater(this.intervalMs, () => this.tick())
    opts.ledger.redis.on('close', this.onConnectionLost)
  }

  private readonly onConnectionLost = () => {
    this.healthySince = undefined
    this.scanDue = true
  }

  start(): Promise<void> {
    this.healthySince = undefined
    this.scanDue = true
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
    const [live, shards] = await Promise.all([coordination.liveWorkers(), ledger.redis.smembers(ledger.keys.workers)])
    this.healthySince ??= Date.now()
    const missingMeansDead = Date.now() - this.healthySince >= this.graceMs
    const view = shards
      .sort()
      .map((shard) => `${shard}:${live.get(Number(shard))?.bootId ?? ''}`)
      .join(',')
    if (view !== this.view || Date.now() - this.lastScanAt >= this.fullScanIntervalMs) this.scanDue = true
    const classify = (entry: HotSetEntry): 'refund' | 'keep' | 'live' => {
      const alive = live.get(entry.shard)
      if (alive && alive.bootId === entry.bootId) {
        if (entry.expiresAtMs <= now) report.liveOwner++
        return 'live'
      }
      if (entry.expiresAtMs > now) return 'keep'
      if (!alive && !missingMeansDead) {
        report.waiting++
        return 'keep'
      }
      return 'refund'
    }

    // The entries found before: refunded once they can be, dropped if their owner turned out live.
    const refunds: Array<Promise<void>> = []
    for (const [field, entry] of this.pending) {
      const verdict = classify(entry)
      if (verdict === 'keep') continue
      this.pending.delete(field)
      if (verdict === 'refund') refunds.push(this.refund(entry, report, () => this.pending.set(field, entry)))
    }
    await Promise.all(refunds)

    if (this.cursor === undefined && this.scanDue) {
      // a change seen from now on makes another scan due
      this.scanDue = false
      this.cursor = '0'
      this.view = view
      this.lastScanAt = Date.now()
    }
    let examined = 0
    while (this.cursor !== undefined && examined < this.maxPerSweep) {
      const [next, flat] = await ledger.redis.hscan(ledger.keys.hotSet, this.cursor, 'COUNT', this.batchSize)
      const batch: Array<Promise<void>> = []
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const field = flat[i]!
        examined++
        if (this.pending.has(field)) continue // seen already (HSCAN may return an entry twice)
        const entry = parseHotSetEntry(field, flat[i + 1]!)
        const verdict = classify(entry)
        if (verdict === 'keep') this.pending.set(field, entry)
        else if (verdict === 'refund') batch.push(this.refund(entry, report, () => this.pending.set(field, entry)))
      }
      await Promise.all(batch)
      this.cursor = next === '0' ? undefined : next
    }
    return report
  }

  /** Entries of owners that were not live when seen, waiting to be refunded (for tests and the admin view). */
  get pendingCount(): number {
    return this.pending.size
  }

  /** One guarded reject; `onFailure` keeps the entry for the next sweep. */
  private async refund(entry: HotSetEntry, report: SweepReport, onFailure: () => void): Promise<void> {
    let outcome
    try {
      outcome = await this.opts.ledger.reject(entry.incomingAccount, entry.packetId, entry.outgoingAccount, {
        bootId: entry.bootId,
        expiresAtMs: entry.expiresAtMs,
      })
    } catch (err) {
      report.failed++
      onFailure()
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
