import type { Logger } from 'pino'
import type { Ledger, ResolveOutcome } from '../store/ledger.js'

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
 * seen must be credited, a refund must be made. The hotSet entry stays until
 * then, so nothing is lost if this process dies first (the sweeper resolves it).
 */
export class Resolver {
  private readonly pending: PendingResolution[] = []
  private timer: NodeJS.Timeout | undefined
  private closed = false

  constructor(
    private readonly ledger: Ledger,
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
  ): Promise<ResolveOutcome | 'deferred'> {
    const job: PendingResolution = { kind, incomingAccount, packetId, outgoingAccount, attempts: 0 }
    try {
      return await this.run(job)
    } catch (err) {
      this.log.error({ err, packetId, kind }, 'could not settle packet; will retry')
      this.pending.push(job)
      this.schedule()
      return 'deferred'
    }
  }

  private run(job: PendingResolution): Promise<ResolveOutcome> {
    return job.kind === 'fulfill'
      ? this.ledger.fulfill(job.incomingAccount, job.packetId, job.outgoingAccount)
      : this.ledger.reject(job.incomingAccount, job.packetId, job.outgoingAccount)
  }

  private schedule(): void {
    if (this.timer || this.closed || this.pending.length === 0) return
    const attempts = this.pending[0]!.attempts
    this.timer = setTimeout(() => void this.retry(), Math.min(100 * 2 ** attempts, 5000))
    this.timer.unref()
  }

  private async retry(): Promise<void> {
    this.timer = undefined
    while (this.pending.length > 0 && !this.closed) {
      const job = this.pending[0]!
      try {
        await this.run(job)
        this.pending.shift()
      } catch {
        job.attempts++
        break
      }
    }
    this.schedule()
  }

  /** Stops retrying; what is left stays in the hotSet for the sweeper. */
  close(): number {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    return this.pending.length
  }
}
