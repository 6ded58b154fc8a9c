import type { Logger } from 'pino'
import type { Coordination } from '../store/coordination.js'
import { type HotSetEntry, type Ledger, parseIncomingRecord, parseOutgoingRecord, type PendingCredit } from '../store/ledger.js'
import { Repeater } from '../util/repeat.js'

/** Called once for each packet the sweeper refunded (e.g. to send the reject to an async caller's callback). */
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
  /**
   * How long after a packet's expiry the sweeper settles it (default 1000 ms),
   * checked on the clock of the Redis that holds each record: a fulfill later
   * than its expiry is refused there, so the two never race while the clocks
   * of the farm's Redis nodes agree within this margin.
   */
  clockMarginMs?: number
  /** Records read per Redis call (SSCAN/HSCAN COUNT, default 500). */
  batchSize?: number
  /** Most records examined in one sweep (default 20000); the next sweep goes on. */
  maxPerSweep?: number
  onRefund?: RefundHook
}

export interface SweepReport {
  /** Refunded now (the packet's records released and the sender refunded). */
  refunded: number
  /** Fulfilled packets whose next hop the dead owner had not credited yet, and pairs whose owed credits were moved: credited now. */
  credited: number
  /** Dead owners whose records were all settled: dropped from the list of owners. */
  ownersDone: number
  /** Owners without a heartbeat the sweeper has not watched long enough to call dead. */
  waiting: number
  /** Already settled by someone else when the sweeper came. */
  gone: number
  failed: number
}

/** A dead owner: when its records can next be settled (the earliest expiry seen, plus the margin). */
interface DeadOwner {
  nextCheckAt: number
}

/**
 * Leader duty: settles the packets of worker processes that are gone, once
 * they have expired, and moves the credits their fulfills left owed. Every
 * process names itself in `{farm}:owners` and, before its first record on
 * an account, adds the account to its own index (Keys.ownerAccounts): the
 * sweeper reads the index of each owner whose heartbeat is gone, never
 * every account. For each of the owner's records past its expiry (plus the
 * clock margin):
 *
 * - an incoming record: the packet was not fulfilled: its outgoing record is
 *   released and the sender refunded (Ledger.refundRecord);
 * - an outgoing record whose incoming record is gone: the packet was
 *   fulfilled and its credit never landed: the next hop is credited
 *   (Ledger.creditRecord);
 * - on a cluster, what the account owes its next hops for fulfilled packets
 *   without an outgoing record (a transfer the owner did not finish, or
 *   begin): moved to them (Ledger.transferAllOwed), whoever owed it.
 *
 * Each step names the record's owner and attempt, so it can never settle a
 * newer reservation of the same packet id, and carries the time before which
 * Redis refuses it. Records of live owners are theirs: their Resolver retries,
 * and they refund their own orphans. An owner whose index is empty is
 * dropped from the list. After a full outage (workers and Redis restarted from
 * the append-only file) the same sweep settles everything left over.
 */
export class Sweeper {
  readonly intervalMs: number
  private readonly graceMs: number
  private readonly clockMarginMs: number
  private readonly batchSize: number
  private readonly maxPerSweep: number
  private readonly repeater: Repeater
  /** Local time since which every call to Redis has succeeded, undefined after a failure. */
  private healthySince: number | undefined
  private readonly dead = new Map<string, DeadOwner>()
  onRefund: RefundHook | undefined

  constructor(private readonly opts: SweeperOptions) {
    this.intervalMs = opts.intervalMs ?? 1000
    this.graceMs = (opts.heartbeatTtlMs ?? 3000) + (opts.heartbeatIntervalMs ?? 1000)
    this.clockMarginMs = opts.clockMarginMs ?? 1000
    this.batchSize = opts.batchSize ?? 500
    this.maxPerSweep = opts.maxPerSweep ?? 20_000
    this.onRefund = opts.onRefund
    this.repeater = new Repeater(this.intervalMs, () => this.tick())
    opts.ledger.redis.on('close', this.onConnectionLost)
  }

  private readonly onConnectionLost = () => {
    this.healthySince = undefined
    // Redis may come back from an older append-only file: look at every dead owner again
    for (const owner of this.dead.values()) owner.nextCheckAt = 0
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
      if (report.refunded > 0 || report.credited > 0 || report.failed > 0) this.opts.log.info(report, 'sweeper settled expired packets of dead workers')
    } catch (err) {
      this.opts.log.warn({ err }, 'sweep failed (Redis unreachable?); next one in %d ms', this.intervalMs)
    }
  }

  /** One sweep over the records expired by `now` (local clock; Redis checks its own). */
  async sweep(now = Date.now()): Promise<SweepReport> {
    try {
      return await this.sweepOwners(now)
    } catch (err) {
      this.healthySince = undefined
      throw err
    }
  }

  /** Owners known to be dead, waiting for their records to expire (for tests and the admin view). */
  get pendingCount(): number {
    return this.dead.size
  }

  private async sweepOwners(now: number): Promise<SweepReport> {
    const { ledger, coordination } = this.opts
    const report: SweepReport = { refunded: 0, credited: 0, ownersDone: 0, waiting: 0, gone: 0, failed: 0 }
    const [live, owners] = await Promise.all([coordination.liveWorkers(), ledger.redis.smembers(ledger.keys.owners)])
    this.healthySince ??= Date.now()
    const missingMeansDead = Date.now() - this.healthySince >= this.graceMs
    const liveOwners = new Set([...live.values()].map((w) => w.bootId))
    for (const known of this.dead.keys()) if (!owners.includes(known)) this.dead.delete(known)
    let budget = this.maxPerSweep
    for (const owner of owners.sort()) {
      if (liveOwners.has(owner) || owner === ledger.bootId) {
        this.dead.delete(owner)
        continue
      }
      if (!missingMeansDead) {
        report.waiting++
        continue
      }
      let dead = this.dead.get(owner)
      if (!dead) this.dead.set(owner, (dead = { nextCheckAt: 0 }))
      if (dead.nextCheckAt > now || budget <= 0) continue
      budget = await this.sweepOwner(owner, dead, now, budget, report)
    }
    return report
  }

  /**
   * Settles what can be settled of one dead owner's records; drops each
   * account it has no records on any more from its index, and the owner
   * once the index is empty. Returns the budget left.
   */
  private async sweepOwner(owner: string, dead: DeadOwner, now: number, budget: number, report: SweepReport): Promise<number> {
    const { ledger } = this.opts
    const indexKey = ledger.keys.ownerAccounts(owner)
    let earliest = Infinity
    let complete = true
    let cursor = '0'
    do {
      const [next, accounts] = await ledger.redis.sscan(indexKey, cursor, 'COUNT', this.batchSize)
      cursor = next
      for (const account of accounts) {
        if (budget <= 0) {
          complete = false
          break
        }
        const [incoming, outgoing] = await Promise.all([
          this.records(ledger.keys.inflight(account), owner, (field, value) => parseIncomingRecord(account, field, value)),
          this.records(ledger.keys.credits(account), owner, (field, value) => parseOutgoingRecord(account, field, value)),
        ])
        budget -= incoming.length + outgoing.length + 1
        const settled = await Promise.all([
          ...incoming.map((e) => this.settleIncoming(e, now, report)),
          ...outgoing.map((c) => this.settleOutgoing(c, now, report)),
        ])
        const left = settled.filter((until) => until !== undefined)
        if (ledger.split && !(await this.transferOwed(account, report))) left.push(now + this.intervalMs)
        if (left.length === 0) await ledger.redis.srem(indexKey, account)
        for (const until of left) earliest = Math.min(earliest, until)
      }
    } while (cursor !== '0' && budget > 0)
    if (cursor !== '0') complete = false
    if (complete && earliest === Infinity && (await ledger.redis.scard(indexKey)) === 0) {
      await ledger.redis.srem(ledger.keys.owners, owner)
      this.dead.delete(owner)
      report.ownersDone++
      return budget
    }
    dead.nextCheckAt = complete ? Math.min(earliest, now + 60_000) : 0
    return budget
  }

  /**
   * Moves what the account owes its next hops for fulfilled packets (a
   * cluster's, without outgoing records): owed by any process, so the
   * account leaves a dead owner's index only once nothing is. False if a
   * transfer failed (tried again on the next sweep).
   */
  private async transferOwed(account: string, report: SweepReport): Promise<boolean> {
    try {
      report.credited += await this.opts.ledger.transferAllOwed(account)
      return true
    } catch (err) {
      report.failed++
      this.opts.log.warn({ err, incomingAccount: account }, 'sweeper could not transfer owed credits')
      return false
    }
  }

  /** One owner's records in one of an account's two hashes. */
  private async records<T extends { bootId: string }>(key: string, owner: string, parse: (field: string, value: string) => T | undefined): Promise<T[]> {
    const found: T[] = []
    let cursor = '0'
    do {
      const [next, flat] = await this.opts.ledger.redis.hscan(key, cursor, 'COUNT', this.batchSize)
      cursor = next
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const record = parse(flat[i]!, flat[i + 1]!)
        if (record?.bootId === owner) found.push(record)
      }
    } while (cursor !== '0')
    return found
  }

  /** Refunds an expired incoming record; returns when to look again if it could not be settled yet. */
  private async settleIncoming(e: HotSetEntry, now: number, report: SweepReport): Promise<number | undefined> {
    const notBefore = e.expiresAtMs + this.clockMarginMs
    if (notBefore > now) return notBefore
    try {
      const outcome = await this.opts.ledger.refundRecord(e, notBefore)
      if (outcome === 'early') return now + this.intervalMs
      if (outcome === 'gone') {
        report.gone++
        return undefined
      }
    } catch (err) {
      report.failed++
      this.opts.log.warn({ err, incomingAccount: e.incomingAccount, packetId: e.packetId }, 'sweeper could not refund a packet')
      return now + this.intervalMs
    }
    report.refunded++
    try {
      this.onRefund?.(e)
    } catch (err) {
      this.opts.log.error({ err }, 'onRefund hook failed')
    }
    return undefined
  }

  /**
   * An expired outgoing record: its packet is still in flight (its incoming
   * record is there: refund both) or was fulfilled (credit the next hop).
   */
  private async settleOutgoing(c: PendingCredit, now: number, report: SweepReport): Promise<number | undefined> {
    const notBefore = c.expiresAtMs + this.clockMarginMs
    if (notBefore > now) return notBefore
    const { ledger } = this.opts
    try {
      const value = await ledger.redis.hget(ledger.keys.inflight(c.incomingAccount), c.packetId)
      const incoming = value === null ? undefined : parseIncomingRecord(c.incomingAccount, c.packetId, value)
      // still in flight: refund both (whichever of its two accounts the sweep reaches first)
      if (incoming && incoming.bootId === c.bootId && incoming.attempt === c.attempt) return await this.settleIncoming(incoming, now, report)
      const outcome = await ledger.creditRecord(c)
      if (outcome === 'gone') report.gone++
      else report.credited++
      return undefined
    } catch (err) {
      report.failed++
      this.opts.log.warn({ err, outgoingAccount: c.outgoingAccount, packetId: c.packetId }, 'sweeper could not credit a packet')
      return now + this.intervalMs
    }
  }
}
