import { setTimeout as sleep } from 'node:timers/promises'
import type { Logger } from 'pino'
import { Agent, request } from 'undici'

/** One reply to POST to a caller's Callback-Url. */
export interface CallbackJob {
  /** The caller account: its pending deliveries are counted (pendingFor). */
  accountId: string
  url: string
  /** Sent back as the `Request-Id` header, as the caller wrote it. */
  requestId: string
  /** The caller account's `outgoing.token`, sent as `Authorization: Bearer`. */
  token: string | undefined
  /** The OER Fulfill or Reject. */
  body: Buffer
  /** No attempt starts after this instant (the prepare's expiry); the first attempt is always made. */
  deadlineMs: number
}

/**
 * delivered: a 2xx. refused: another status below 500 (4xx: the caller does
 * not want it; never retried). gave-up: 5xx or no answer until the deadline.
 * closed: the worker closed first.
 */
export type CallbackOutcome = 'delivered' | 'refused' | 'gave-up' | 'closed'

export interface CallbackTiming {
  /** First pause after a failed attempt; doubles each time up to maxBackoffMs. */
  firstBackoffMs: number
  maxBackoffMs: number
  /** Longest wait for one attempt's answer. */
  attemptTimeoutMs: number
}

const DEFAULT_TIMING: CallbackTiming = { firstBackoffMs: 50, maxBackoffMs: 1000, attemptTimeoutMs: 5000 }

/**
 * POSTs replies of async ILP-over-HTTP packets to their callers (RFC 35
 * draft 3): retried with backoff on 5xx or no answer while the prepare has not
 * expired, stopped by any 2xx or 4xx. Keep-alive connections per origin.
 */
export class CallbackSender {
  private readonly agent = new Agent({ keepAliveTimeout: 30_000, connections: 64, connect: { timeout: 5000 } })
  private readonly running = new Set<Promise<CallbackOutcome>>()
  private readonly perAccount = new Map<string, number>()
  private readonly closing = new AbortController()

  constructor(
    private readonly log: Logger,
    private readonly timing: CallbackTiming = DEFAULT_TIMING,
  ) {}

  /** Deliveries still trying. */
  get pending(): number {
    return this.running.size
  }

  /** Deliveries still trying for one account. */
  pendingFor(accountId: string): number {
    return this.perAccount.get(accountId) ?? 0
  }

  deliver(job: CallbackJob): Promise<CallbackOutcome> {
    this.perAccount.set(job.accountId, this.pendingFor(job.accountId) + 1)
    const run = this.run(job).finally(() => {
      this.running.delete(run)
      const left = this.pendingFor(job.accountId) - 1
      if (left > 0) this.perAccount.set(job.accountId, left)
      else this.perAccount.delete(job.accountId)
    })
    this.running.add(run)
    return run
  }

  private async run(job: CallbackJob): Promise<CallbackOutcome> {
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'request-id': job.requestId }
    if (job.token) headers.authorization = `Bearer ${job.token}`
    let backoff = this.timing.firstBackoffMs
    for (let attempt = 1; ; attempt++) {
      if (this.closing.signal.aborted) return 'closed'
      const timeoutMs = Math.min(this.timing.attemptTimeoutMs, Math.max(250, job.deadlineMs - Date.now()))
      let status: number | undefined
      let failure: string | undefined
      try {
        const res = await request(job.url, {
          method: 'POST',
          headers,
          body: job.body,
          dispatcher: this.agent,
          signal: AbortSignal.any([this.closing.signal, AbortSignal.timeout(timeoutMs)]),
        })
        status = res.statusCode
        await res.body.dump().catch(() => undefined)
      } catch (err) {
        failure = (err as Error).message
      }
      if (status !== undefined && status < 500) {
        if (status >= 200 && status < 300) return 'delivered'
        this.log.warn({ url: job.url, requestId: job.requestId, status, attempt }, 'callback refused; not retried')
        return 'refused'
      }
      if (Date.now() + backoff >= job.deadlineMs) {
        this.log.warn({ url: job.url, requestId: job.requestId, status, failure, attempt }, 'callback not delivered before the prepare expired')
        return 'gave-up'
      }
      try {
        await sleep(backoff, undefined, { signal: this.closing.signal })
      } catch {
        return 'closed'
      }
      backoff = Math.min(backoff * 2, this.timing.maxBackoffMs)
    }
  }

  /** Lets running deliveries go on for up to graceMs, then stops them. */
  async close(graceMs: number): Promise<void> {
    if (this.running.size > 0) {
      const timer = sleep(graceMs, undefined, { ref: false }).catch(() => undefined)
      await Promise.race([Promise.allSettled([...this.running]), timer])
    }
    this.closing.abort()
    await Promise.allSettled([...this.running])
    await this.agent.close().catch(() => undefined)
  }
}
