/** Half-life of the success/failure window the success-rate policy reads. */
export const WINDOW_HALF_LIFE_MS = 60_000
/** Half-life of the T01/T02 penalty: a hop that answered T01/T02 is tried less for a few seconds. */
export const TRANSIENT_HALF_LIFE_MS = 5_000
/** Consecutive failures (T01, T02, R00, F05) after which a candidate is dead: skipped until a probe. */
export const DEAD_AFTER_FAILURES = 5
/** First backoff of a dead candidate before one probe packet; doubles on each failed probe. */
export const FIRST_BACKOFF_MS = 1_000
export const MAX_BACKOFF_MS = 30_000

/** What one forwarded packet says about its next hop. */
export type HopOutcome =
  /** Fulfilled. */
  | 'success'
  /** T01/T02 (from the hop, or the farm's own for an unreachable or broken hop): counts, and weighs the hop down for a while. */
  | 'transient-failure'
  /** R00 (no answer in time), F05 (wrong fulfillment): counts as a failure. */
  | 'failure'
  /** Any other reject (F-codes from downstream, T04...): not the hop's fault, not counted. */
  | 'neutral'

function decay(value: number, elapsedMs: number, halfLifeMs: number): number {
  return elapsedMs <= 0 ? value : value * Math.pow(2, -elapsedMs / halfLifeMs)
}

/**
 * Counters of one candidate (prefix, next hop) in one worker.
 *
 * - `successes`/`failures`: farm-wide totals (every worker's flushed counts,
 *   read back from Redis each second) plus this worker's not yet flushed ones.
 * - the **window**: the same outcomes, exponentially decayed (half-life
 *   WINDOW_HALF_LIFE_MS): what the success-rate policy reads. Local outcomes
 *   enter it at once; other workers' when read back.
 * - **health** (this worker's own view): a decaying count of recent T01/T02,
 *   and consecutive failures → dead, skipped until a probe after a backoff.
 */
export class CandidateStats {
  successes = 0
  failures = 0
  /** Outcomes not yet flushed to Redis. */
  pendingSuccesses = 0
  pendingFailures = 0
  /** The farm-wide totals at the last read-back (to tell other workers' new outcomes from ours). */
  lastReadSuccesses = 0
  lastReadFailures = 0

  private windowSuccesses = 0
  private windowFailures = 0
  private windowAt = 0
  private transient = 0
  private transientAt = 0

  consecutiveFailures = 0
  /** When dead: the time from which one probe packet may go; 0 when alive. */
  probeAt = 0
  backoffMs = 0

  constructor(readonly key: string) {}

  /** Records one packet's outcome (the packet path: a few additions, no Redis). */
  record(outcome: HopOutcome, now: number): void {
    if (outcome === 'neutral') {
      // the hop answered: it is alive
      this.alive()
      return
    }
    this.ageWindow(now)
    if (outcome === 'success') {
      this.successes++
      this.pendingSuccesses++
      this.windowSuccesses++
      this.alive()
      return
    }
    this.failures++
    this.pendingFailures++
    this.windowFailures++
    if (outcome === 'transient-failure') {
      this.transient = decay(this.transient, now - this.transientAt, TRANSIENT_HALF_LIFE_MS) + 1
      this.transientAt = now
    }
    this.consecutiveFailures++
    if (this.probeAt !== 0) {
      // a failed probe: back off longer
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS)
      this.probeAt = now + this.backoffMs
    } else if (this.consecutiveFailures >= DEAD_AFTER_FAILURES) {
      this.backoffMs = FIRST_BACKOFF_MS
      this.probeAt = now + this.backoffMs
    }
  }

  private alive(): void {
    this.consecutiveFailures = 0
    this.probeAt = 0
    this.backoffMs = 0
  }

  /** Other workers' outcomes, read back from Redis: they enter the totals and the window. */
  addRemote(successes: number, failures: number, now: number): void {
    if (successes <= 0 && failures <= 0) return
    this.ageWindow(now)
    this.successes += Math.max(0, successes)
    this.failures += Math.max(0, failures)
    this.windowSuccesses += Math.max(0, successes)
    this.windowFailures += Math.max(0, failures)
  }

  private ageWindow(now: number): void {
    const elapsed = now - this.windowAt
    if (elapsed > 0) {
      this.windowSuccesses = decay(this.windowSuccesses, elapsed, WINDOW_HALF_LIFE_MS)
      this.windowFailures = decay(this.windowFailures, elapsed, WINDOW_HALF_LIFE_MS)
      this.windowAt = now
    }
  }

  /** Laplace-smoothed success ratio over the recent window: (s + 1) / (s + f + 2); 0.5 with no data. */
  successRate(now: number): number {
    this.ageWindow(now)
    return (this.windowSuccesses + 1) / (this.windowSuccesses + this.windowFailures + 2)
  }

  /** Decayed count of recent T01/T02 answers (0 when none lately). */
  recentTransient(now: number): number {
    return decay(this.transient, now - this.transientAt, TRANSIENT_HALF_LIFE_MS)
  }

  /** 1 for a hop without recent T01/T02, smaller the more it had lately. */
  transientWeight(now: number): number {
    return 1 / (1 + this.recentTransient(now))
  }

  /** Dead (consecutive failures) and its probe time not reached. */
  isDead(now: number): boolean {
    return this.probeAt !== 0 && now < this.probeAt
  }

  /** Dead, and its probe is due: the next packet may go to it (once per backoff). */
  probeDue(now: number): boolean {
    return this.probeAt !== 0 && now >= this.probeAt
  }

  /** A probe was sent: no other one until the backoff has passed again (or it answers). */
  probeSent(now: number): void {
    this.probeAt = now + this.backoffMs
  }

  /** For tests and tools: sets the window directly (synthetic stats). */
  setWindow(successes: number, failures: number, now: number): void {
    this.windowSuccesses = successes
    this.windowFailures = failures
    this.windowAt = now
  }
}
