import type { Logger } from 'pino'
import { DurabilityError } from '../store/durability.js'
import type { ResolveOutcome } from '../store/ledger.js'
import type { PacketLedger } from './ports.js'

interface PendingResolution {
  kind: 'fulfill' | 'reject'
  incomingAccount: string
  packetId: string
  outgoingAccount: string
  attempts: number
}

/**
 * Finishes a packet in the ledger. When Redis cannot be reached, the outcome
 * is kept and retried with backoff until it lands: a fulfillment the farm has
 * seen must be credited, a refund must be made. The packet's records stay until
 * then, so nothing is lost if this process dies first (the sweeper resolves it).
 */
export class Resolver {
  private readonly pending: PendingResolution[] = []
  private timer: NodeJS.Timeout | undefined
  /** The retry loop in progress: never two at once (each would settle pending[0] and shift). */
  private retrying: Promise<void> | undefined
  private closed = false

  constructor(
    private readonly ledger: Pick<PacketLedger, 'fulfill' | 'reject' | 'durabilityTimeoutMs'>,
    private readonly log: Logger,
  ) {}

  get backlog(): number {
    return this.pending.length
  }

  async resolve(
    kind: 'fulfill' | 'reject',
    incomingAccount: string,
    packetId: string,
    outgoingAccount: string,
    opts: { answerByMs?: number } = {},
  ): Promise<ResolveOutcome | 'deferred' | 'unreplicated'> {
    const job: PendingResolution = { kind, incomingAccount, packetId, outgoingAccount, attempts: 0 }
    try {
      return await this.run(job)
    } catch (err) {
      // Not confirmed by a replica in time, or not known at all (a master failing over), under
      // redis.durability: replica: the fulfill is passed on only once a try says, confirmed, that it
      // landed. A retry learns it: the decision's record is gone and the credit still owed is made, or
      // the decision is made now; each try waits for a replica. Tried until the sender's deadline,
      // then answered T00, and finished in the background.
      if (kind === 'fulfill' && (err instanceof DurabilityError || this.ledger.durabilityTimeoutMs !== undefined)) {
        for (let delay = 100; Date.now() + delay < (opts.answerByMs ?? 0); delay = Math.min(delay * 2, 1_000)) {
          await new Promise((resolve) => setTimeout(resolve, delay))
          try {
            return await this.run(job)
          } catch {
            // not yet: the failover may still be under way
          }
        }
        this.pending.push(job)
        this.schedule()
        return 'unreplicated'
      }
      this.log.error({ err, packetId, kind }, 'could not settle packet; will retry')
      this.pending.push(job)
      this.schedule()
      return 'deferred'
    }
  }

  private run(job: PendingResolution): Promise<ResolveOutcome> {
    return job.kind === 'fulfill'
      ? this.ledger.fulfill(job.incomingAccount, job.packetId, job.outgoingAccount, { creditLater: true })
      : this.ledger.reject(job.incomingAccount, job.packetId, job.outgoingAccount)
  }

  private schedule(): void {
    if (this.timer || this.retrying || this.closed || this.pending.length === 0) return
    const attempts = this.pending[0]!.attempts
    this.timer = setTimeout(() => void this.retry(), Math.min(100 * 2 ** attempts, 5000))
    this.timer.unref()
  }

  private retry(): Promise<void> {
    this.timer = undefined
    this.retrying ??= this.retryPending().finally(() => {
      this.retrying = undefined
      this.schedule()
    })
    return this.retrying
  }

  /**
   * One pass over what is pending. A job that fails goes to the back of the
   * queue, so one that keeps failing for a reason of its own cannot hold up
   * the others; a pass stops after as many failures in a row as there are
   * jobs (Redis is most likely away) and the next one waits for the backoff.
   */
  private async retryPending(): Promise<void> {
    let failuresInARow = 0
    while (this.pending.length > 0 && !this.closed && failuresInARow < this.pending.length) {
      // the job stays in the queue (and in the backlog) while it is tried
      const job = this.pending[0]!
      try {
        await this.run(job)
        this.pending.shift()
        failuresInARow = 0
      } catch {
        job.attempts++
        failuresInARow++
        this.pending.push(this.pending.shift()!)
      }
    }
  }

  /** Tries what is pending once more now (before close): a fulfill sent upstream must not be left to a refund. */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    await this.retry()
  }

  /** Stops retrying; what is left stays in the packets' records for the sweeper. */
  close(): number {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    return this.pending.length
  }
}
