import type { AccountConfig } from '../config/schema.js'
import type { PacketServices } from '../packet/context.js'
import { admitAsyncPrepare } from '../packet/pipeline.js'
import { IlpRejection, rejectBuffer } from '../packet/reject.js'
import type { CallbackOutcome, CallbackSender } from './callbacks.js'
import { normalizeRequestId } from './headers.js'
import { outgoingToken } from '../accounts/outgoing-token.js'

/** A swept packet has expired already: its reject gets this long to reach the caller. */
export const SWEPT_CALLBACK_WINDOW_MS = 5_000

export interface AsyncRequest {
  from: AccountConfig
  raw: Buffer
  /** The Request-Id header as the caller wrote it (already checked to be a UUID). */
  requestId: string
  /** The Callback-Url header, already checked to be an http(s) URL. */
  callbackUrl: string
}

/**
 * The HTTP answer to an async prepare: 202, 409 for a Request-Id this account
 * used before, 429 when the account is over its Request-Id or pending-callback limit.
 */
export type AsyncAcceptance = 'accepted' | 'replayed' | 'too-many-request-ids' | 'too-many-callbacks'

export interface AsyncLimits {
  /** Longest Callback-Url (normalized) accepted and stored with its Request-Id. */
  maxCallbackUrlLength: number
  /** Callbacks one account may have pending on this worker; a prepare beyond it is refused before its claim. */
  maxPendingPerAccount: number
  /** Callbacks are retried until min(prepare expiry, now + maxHoldTimeMs + this). */
  callbackMarginMs: number
}

/** The identity of a packet in flight, as the sweeper reports it. */
export interface SweptEntry {
  readonly incomingAccount: string
  readonly packetId: string
}

/**
 * Inbound async ILP-over-HTTP (RFC 35 draft 3). `accept` hands the packet to
 * the pipeline's async entry, which claims the Request-Id first (its
 * tombstone records the Callback-Url) and then takes the packet the rest of
 * the way as a sync one, with the Request-Id as packet id; the caller answers
 * 202 as soon as the claim is made. The Fulfill or Reject is then POSTed to the
 * Callback-Url by the CallbackSender.
 */
export class AsyncInbound {
  private readonly packets = new Set<Promise<void>>()
  /** Async packets in the pipeline per account (their callbacks are not pending yet). */
  private readonly pipelined = new Map<string, number>()

  constructor(
    private readonly services: PacketServices,
    private readonly callbacks: CallbackSender,
    private readonly limits: AsyncLimits = { maxCallbackUrlLength: 2_048, maxPendingPerAccount: 100, callbackMarginMs: 5_000 },
  ) {}

  get maxCallbackUrlLength(): number {
    return this.limits.maxCallbackUrlLength
  }

  /** Async packets in the pipeline. */
  get inFlight(): number {
    return this.packets.size
  }

  /** Callbacks still being delivered (or retried). */
  get deliveries(): number {
    return this.callbacks.pending
  }

  /**
   * Throws NotAPrepareError (HTTP 400) for a body that is not a Prepare. A
   * Prepare that fails further checks is accepted and gets its reject by
   * callback. If Redis cannot take the claim, the packet is accepted and
   * answered T00 by callback without being reserved.
   */
  async accept(req: AsyncRequest): Promise<AsyncAcceptance> {
    const packetId = normalizeRequestId(req.requestId)
    if (packetId === undefined) throw new Error('accept: the Request-Id must be checked first')
    // Each accepted prepare ends in one delivery; refusing here keeps an account's retry loops bounded.
    if (this.callbacks.pendingFor(req.from.id) + this.inFlightFor(req.from.id) >= this.limits.maxPendingPerAccount) return 'too-many-callbacks'
    const admission = await admitAsyncPrepare(req.from, req.raw, packetId, req.callbackUrl, this.services)
    if (admission.claim === 'replayed') return 'replayed'
    if (admission.claim === 'too-many') return 'too-many-request-ids'
    const { expiresAtMs } = admission
    const accountId = req.from.id
    this.pipelined.set(accountId, this.inFlightFor(accountId) + 1)
    const run: Promise<void> = admission.answer
      .then((reply) => void this.callback(req, reply, expiresAtMs))
      .catch((err: unknown) => this.services.log.error({ err }, 'async packet failed'))
      .finally(() => {
        this.packets.delete(run)
        const left = this.inFlightFor(accountId) - 1
        if (left > 0) this.pipelined.set(accountId, left)
        else this.pipelined.delete(accountId)
      })
    this.packets.add(run)
    return 'accepted'
  }

  private inFlightFor(accountId: string): number {
    return this.pipelined.get(accountId) ?? 0
  }

  /**
   * The farm is done with a packet by min(expiry, now + maxHoldTimeMs); its
   * reply is retried a margin beyond that and no longer, even when the sender
   * gave the prepare an expiry a year away.
   */
  private deliveryDeadline(expiresAtMs: number): number {
    return Math.min(expiresAtMs, Date.now() + this.services.maxHoldTimeMs + this.limits.callbackMarginMs)
  }

  private callback(req: AsyncRequest, reply: Buffer, deadlineMs: number): Promise<CallbackOutcome> {
    return this.callbacks.deliver({
      accountId: req.from.id,
      url: req.callbackUrl,
      requestId: req.requestId,
      token: outgoingToken(req.from),
      body: reply,
      deadlineMs: this.deliveryDeadline(deadlineMs),
    })
  }

  /**
   * For the sweeper's refund hook: when it refunds an expired packet
   * whose owner died, and that entry is an async inbound packet (its packet id
   * is a Request-Id whose tombstone holds a Callback-Url), POSTs an R00 reject
   * to the caller, retried for SWEPT_CALLBACK_WINDOW_MS. Other entries are
   * ignored. Resolves with the delivery's outcome, or undefined when there
   * was nothing to send.
   */
  async rejectSweptAsyncPacket(entry: SweptEntry): Promise<CallbackOutcome | undefined> {
    const requestId = normalizeRequestId(entry.packetId)
    const from = (await this.services.accounts.load(entry.incomingAccount))?.account
    if (requestId === undefined || !from) return undefined
    const url = await this.services.requestIds.callbackUrl(from.id, requestId)
    if (url === undefined) return undefined
    const reply = rejectBuffer(this.services.ilpAddress, new IlpRejection('R00', 'packet expired before it settled'))
    return this.callbacks.deliver({
      accountId: from.id,
      url,
      requestId,
      token: outgoingToken(from),
      body: reply,
      deadlineMs: Date.now() + SWEPT_CALLBACK_WINDOW_MS,
    })
  }

  /**
   * Waits for the packets still in the pipeline (each is bounded by its
   * outgoing expiry, like a sync request), then gives the callbacks still
   * being delivered up to graceMs before stopping them.
   */
  async close(graceMs: number): Promise<void> {
    await Promise.allSettled([...this.packets])
    await this.callbacks.close(graceMs)
  }
}
