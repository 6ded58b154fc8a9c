import type { Logger } from 'pino'
import { isPinned } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import { Deltas, LocalHistogram } from './deltas.js'
import {
  ACTIVE_ACCOUNTS_KEPT,
  fields,
  type FarmTotals,
  type Outcome,
  OTHER_ACCOUNTS,
  PACKET_BUCKETS,
  parseTotals,
  REDIS_BUCKETS,
} from './fields.js'
import { Keys } from '../store/keys.js'
import { timeRedisCalls } from './redis-timing.js'
import { isFulfill, prepareAmount, REJECT_CODES, rejectCodeIndex } from './wire.js'
import type { RedisClient } from '../store/redis.js'

export interface FarmMetricsOptions {
  /** The worker's command connection: its calls are timed, and the flushes go through it. */
  redis: RedisClient
  keyPrefix: string
  /** This worker process's boot id: names its flush marker. */
  bootId: string
  log: Logger
  /** How often the counts are added to Redis (default 1000 ms). */
  flushIntervalMs?: number
}

/** One incoming account's counts since the last flush; made once per account, so a packet allocates nothing. */
class AccountCounts {
  fulfilled = 0
  fulfilledAmount = 0
  readonly rejected = new Float64Array(REJECT_CODES.length)
  rejectedAmount = 0

  constructor(readonly account: string) {}

  /** Moves the counts into `into` (building field names only for what changed) and starts again from zero. */
  drain(into: Deltas): void {
    if (this.fulfilled !== 0) into.count(fields.fulfilled(this.account), this.fulfilled)
    if (this.fulfilledAmount !== 0) into.sum(fields.amount(this.account, 'fulfilled'), this.fulfilledAmount)
    if (this.rejectedAmount !== 0) into.sum(fields.amount(this.account, 'rejected'), this.rejectedAmount)
    for (let i = 0; i < this.rejected.length; i++) {
      if (this.rejected[i] === 0) continue
      into.count(fields.rejected(this.account, REJECT_CODES[i]!), this.rejected[i]!)
      this.rejected[i] = 0
    }
    this.fulfilled = this.fulfilledAmount = this.rejectedAmount = 0
  }
}

/** A marker entry lives this long: long enough for any retry, short enough not to pile up one key per boot. */
const FLUSH_MARKER_TTL_MS = 24 * 3600_000
/** Recently active accounts a worker notes per second at most: a burst of many senders costs a bounded Set and ZADD. */
const ACTIVE_PER_SECOND = 200
const DEFAULT_FLUSH_INTERVAL_MS = 1000

/**
 * The label an account's packets are counted under: its id when it has
 * series of its own (pinned: parent, peer, route carrier, `metrics: true`),
 * else OTHER_ACCOUNTS, so the number of series stays what the operator
 * configured however many users sign up, and the farm-wide totals stay exact.
 */
export function metricsLabel(account: AccountConfig): string {
  return isPinned(account) ? account.id : OTHER_ACCOUNTS
}

/**
 * The error of a call that may still have run in Redis (a timeout, a
 * connection lost with the call written), as opposed to one refused before
 * running (a reply error, no connection at all).
 */
function mightHaveRun(err: unknown): boolean {
  if (!(err instanceof Error)) return true
  return err.name !== 'ReplyError' && !/enableOfflineQueue/.test(err.message)
}

/**
 * The farm-wide packet and Redis metrics of one worker. The packet
 * path and the Redis client only add to in-memory counts; every second they
 * are added to one Redis hash shared by the whole farm (HINCRBY /
 * HINCRBYFLOAT in one MULTI), so the totals are farm-wide, only grow, and
 * outlive any worker. A scrape on any worker reads that hash back.
 *
 * **Exactly once.** Each flush also writes its sequence number to this
 * process's marker key, in the same MULTI. A flush whose outcome is unknown
 * (timed out, connection lost) is held back, and the next flush first reads
 * the marker: the batch is dropped if Redis applied it, sent again if not.
 * Nothing else is sent meanwhile, so the marker always answers for that batch.
 *
 * **Recently active accounts.** The ids of accounts counted under
 * OTHER_ACCOUNTS that sent packets since the last flush (at most
 * ACTIVE_PER_SECOND a second) go into the same MULTI as a ZADD to
 * `accounts:active`, trimmed to the newest ACTIVE_ACCOUNTS_KEPT: the
 * dashboard's view of who is using the farm, without ever listing every
 * account. It is a hint, not a count: a batch that fails takes its ids with it
 * (their next packet notes them again).
 */
export class FarmMetrics {
  private readonly redis: RedisClient
  private readonly log: Logger
  private readonly key: string
  private readonly markerKey: string
  private readonly activeKey: string
  private readonly accounts = new Map<string, AccountCounts>()
  /** Ids of accounts without series of their own that sent packets since the last flush; at most activeCap. */
  private active = new Set<string>()
  private readonly activeCap: number
  private readonly packetSeconds: Record<Outcome, LocalHistogram>
  private readonly redisSeconds = new Map<string, LocalHistogram>()
  private readonly untime: () => void
  private timer: NodeJS.Timeout | undefined
  /** Counted, taken out of the live counts, not yet in Redis. */
  private carry = new Deltas()
  /** A batch that may or may not have reached Redis, and the sequence number that says which. */
  private unsure: { seq: number; batch: Deltas } | undefined
  private seq = 0
  /** True while a flush's own calls are handed to the client: they are not timed (they would keep every flush non-empty). */
  private sendingFlush = false
  private flushing: Promise<void> = Promise.resolve()
  /** Flushes asked for and not finished. */
  private pending = 0
  private failing = false

  private constructor(opts: FarmMetricsOptions) {
    this.redis = opts.redis
    this.log = opts.log
    const keys = new Keys(opts.keyPrefix)
    this.key = keys.metrics
    this.markerKey = keys.metricsFlushed(opts.bootId)
    this.activeKey = keys.activeAccounts
    const perFlush = Math.round((ACTIVE_PER_SECOND * (opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS)) / 1000)
    this.activeCap = Math.min(ACTIVE_ACCOUNTS_KEPT, Math.max(1, perFlush))
    this.packetSeconds = {
      fulfilled: new LocalHistogram(PACKET_BUCKETS, fields.packetSeconds('fulfilled'), fields.packetSecondsSum('fulfilled')),
      rejected: new LocalHistogram(PACKET_BUCKETS, fields.packetSeconds('rejected'), fields.packetSecondsSum('rejected')),
    }
    this.untime = timeRedisCalls(
      this.redis,
      (command, seconds) => this.redisCallDone(command, seconds),
      () => this.sendingFlush,
    )
  }

  /** Starts timing the connection's calls and flushing every second. */
  static start(opts: FarmMetricsOptions): FarmMetrics {
    const metrics = new FarmMetrics(opts)
    metrics.timer = setInterval(() => metrics.tick(), opts.flushIntervalMs ?? DEFAULT_FLUSH_INTERVAL_MS).unref()
    return metrics
  }

  /** The timer's flush: skipped while one is still running (a slow Redis must not pile them up); says when flushing fails and recovers, not every second. */
  private tick(): void {
    if (this.pending > 0) return
    this.flush().then(
      () => {
        if (this.failing) this.log.info('metrics: flushing to Redis again')
        this.failing = false
      },
      (err: unknown) => {
        if (!this.failing) this.log.warn({ err }, 'metrics: could not add the counts to Redis; they are kept and retried every second')
        this.failing = true
      },
    )
  }

  /**
   * The packet path's observer: one packet answered (handlePrepare's end),
   * from the incoming account `from`. `startedAtMs` is performance.now() when
   * it began. A few additions, and a Set entry for an account without series
   * of its own.
   */
  packetDone(from: AccountConfig, prepare: Buffer, reply: Buffer, startedAtMs: number): void {
    const seconds = (performance.now() - startedAtMs) / 1000
    const label = metricsLabel(from)
    if (label === OTHER_ACCOUNTS && this.active.size < this.activeCap) this.active.add(from.id)
    let counts = this.accounts.get(label)
    if (counts === undefined) this.accounts.set(label, (counts = new AccountCounts(label)))
    const amount = prepareAmount(prepare)
    if (isFulfill(reply)) {
      counts.fulfilled++
      counts.fulfilledAmount += amount
      this.packetSeconds.fulfilled.observe(seconds)
    } else {
      counts.rejected[rejectCodeIndex(reply)]!++
      counts.rejectedAmount += amount
      this.packetSeconds.rejected.observe(seconds)
    }
  }

  private redisCallDone(command: string, seconds: number): void {
    let h = this.redisSeconds.get(command)
    if (h === undefined) {
      h = new LocalHistogram(REDIS_BUCKETS, fields.redisSeconds(command), fields.redisSecondsSum(command))
      this.redisSeconds.set(command, h)
    }
    h.observe(seconds)
  }

  /** Adds what was counted to the farm-wide hash now. Flushes never overlap; a failed one keeps its counts. */
  flush(): Promise<void> {
    this.pending++
    const run = this.flushing.then(() => this.flushOnce()).finally(() => this.pending--)
    this.flushing = run.catch(() => undefined)
    return run
  }

  /** The farm-wide totals: this worker's counts flushed first, then the hash read back. */
  async totals(): Promise<FarmTotals> {
    await this.flush()
    return parseTotals(await this.redis.hgetall(this.key))
  }

  /** Stops the timer, makes a last flush and stops timing the connection. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await this.flush().catch((err: unknown) => this.log.warn({ err }, 'metrics: last flush failed; its counts are lost'))
    this.untime()
  }

  private async flushOnce(): Promise<void> {
    for (const counts of this.accounts.values()) counts.drain(this.carry)
    this.packetSeconds.fulfilled.drain(this.carry)
    this.packetSeconds.rejected.drain(this.carry)
    for (const h of this.redisSeconds.values()) h.drain(this.carry)
    if (this.unsure) await this.settleUnsure()
    if (this.carry.empty) return
    const batch = this.carry
    this.carry = new Deltas()
    const seq = ++this.seq
    const active = this.active
    this.active = new Set()
    try {
      await this.send(batch, seq, active)
    } catch (err) {
      if (mightHaveRun(err)) this.unsure = { seq, batch }
      else this.carry.merge(batch)
      throw err
    }
  }

  /**
   * Finds out whether the unsure batch reached Redis (the marker says so) and
   * sends it again with the next if not. Throws while that cannot be told:
   * the flush waits, with every count kept.
   */
  private async settleUnsure(): Promise<void> {
    const unsure = this.unsure!
    const applied = Number(await this.redis.get(this.markerKey)) >= unsure.seq
    if (!applied) this.carry.merge(unsure.batch)
    this.unsure = undefined
  }

  private async send(batch: Deltas, seq: number, active: ReadonlySet<string>): Promise<void> {
    const multi = this.redis.multi()
    for (const [field, n] of batch.counts) multi.hincrby(this.key, field, n)
    for (const [field, x] of batch.sums) multi.hincrbyfloat(this.key, field, x)
    multi.set(this.markerKey, seq, 'PX', FLUSH_MARKER_TTL_MS)
    if (active.size > 0) {
      // scores are this worker's clock: workers' clocks agree closely enough for "most recent first"
      const now = Date.now()
      const members: Array<number | string> = []
      for (const id of active) members.push(now, id)
      multi.zadd(this.activeKey, ...members)
      multi.zremrangebyrank(this.activeKey, 0, -(ACTIVE_ACCOUNTS_KEPT + 1))
    }
    this.sendingFlush = true
    let exec: ReturnType<typeof multi.exec>
    try {
      exec = multi.exec()
    } finally {
      this.sendingFlush = false
    }
    const replies = await exec
    // EXEC ran: the batch is in, whatever a single command said (one bad field must not resend the others)
    const failed = replies?.find(([err]) => err !== null)
    if (failed) this.log.warn({ err: failed[0] }, 'metrics: Redis refused part of a flush')
  }
}
