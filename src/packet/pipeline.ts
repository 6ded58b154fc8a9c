import { hash } from 'node:crypto'
import { type IlpPrepare, Type } from 'ilp-packet'
import type { Logger } from 'pino'
import type { AccountConfig } from '../config/schema.js'
import { SYNC_TOMBSTONE } from '../store/request-ids.js'
import type { PacketContext, PacketObserver, RoutedPacket, SettlementCheck } from './ports.js'
import { IlpRejection, rejectBuffer } from './reject.js'
import { type ExpiryDeps, outgoingExpiry } from './steps/expiry.js'
import { forward, type ForwardDeps } from './steps/forward.js'
import { answerCcp, type CcpDeps, isCcpDestination } from './steps/ccp.js'
import { answerIldcp, ILDCP_DESTINATION } from './steps/ildcp.js'
import { NotAPrepareError, parsePrepare } from './steps/parse.js'
import { outgoingAmount, route, type RouteDeps } from './steps/route.js'
import { claimRejection, claimRequestId, type RequestIdClaim, type RequestIdDeps } from './steps/request-id.js'
import { reserve, type ReserveDeps } from './steps/reserve.js'
import { settle, type SettleDeps } from './steps/settle.js'
import { validatePacket } from './steps/validate.js'

/** What the pipeline takes: what its steps take, and who hears of a packet's end. */
export type PipelineDeps = CcpDeps &
  RouteDeps &
  ExpiryDeps &
  RequestIdDeps &
  ReserveDeps &
  ForwardDeps &
  SettleDeps & {
    readonly ilpAddress: string
    /** Settlement requests: checked after a fulfill credits an account with a settleThreshold. */
    readonly settlements?: SettlementCheck | undefined
    /** Told of every packet answered; absent: nothing is counted. */
    readonly metrics?: PacketObserver | undefined
    readonly log: Logger
  }

/** Without a Request-Id, a packet is identified by its own bytes: a resent copy is the same packet. */
function packetIdOf(raw: Buffer, requestId: string | undefined): string {
  // crypto.hash: one call, no Hash object (a few times cheaper for a few hundred bytes)
  return requestId ?? hash('sha256', raw, 'base64url')
}

/**
 * The packet path, one small step at a time: parse, validate, route, expiry,
 * claim the Request-Id (only when there is one: one SET NX), reserve (one Lua
 * call), forward, settle (one Lua call). Steps reject by throwing
 * IlpRejection; once the reservation is made, every path settles it.
 * Throws NotAPrepareError (HTTP 400) for a body that is not a Prepare.
 */
export function handlePrepare(from: AccountConfig, raw: Buffer, requestId: string | undefined, deps: PipelineDeps): Promise<Buffer> {
  const startedAt = deps.metrics === undefined ? 0 : performance.now()
  return observed(from, raw, runPipeline(from, raw, requestId, 'sync', undefined, deps), startedAt, deps)
}

/** An async prepare taken: its Request-Id's claim, and unless the id is refused, the answer to call back with. */
export type AsyncAdmission =
  | { readonly claim: 'replayed' }
  | { readonly claim: 'too-many' }
  | {
      /** 'failed': the store could not take the claim; the answer is then T00, the packet never reserved. */
      readonly claim: 'claimed' | 'failed'
      /** The prepare's expiry (now for one that does not parse): its callback is retried until then at most. */
      readonly expiresAtMs: number
      readonly answer: Promise<Buffer>
    }

/**
 * Async ILP-over-HTTP's way into the pipeline: the prepare is parsed and its
 * Request-Id claimed first, so that the caller can answer 202, 409 or 429 at
 * once; the claim keeps the Callback-Url. A claimed packet then goes the rest
 * of the way as a sync one does, and `answer` is its Fulfill or Reject. A
 * Prepare that does not parse (F01) still claims its id. Throws
 * NotAPrepareError (HTTP 400) for a body that is not a Prepare.
 */
export async function admitAsyncPrepare(
  from: AccountConfig,
  raw: Buffer,
  requestId: string,
  callbackUrl: string,
  deps: PipelineDeps,
): Promise<AsyncAdmission> {
  const startedAt = deps.metrics === undefined ? 0 : performance.now()
  let prepare: IlpPrepare | IlpRejection
  try {
    prepare = parsePrepare(raw)
  } catch (err) {
    if (!(err instanceof IlpRejection)) throw err
    prepare = err
  }
  // a packet that does not parse has no expiry of its own: its reject gets one callback attempt
  const expiresAtMs = prepare instanceof IlpRejection ? Date.now() : prepare.expiresAt.getTime()
  const claim = await claimRequestId(from.id, requestId, expiresAtMs, callbackUrl, deps)
  if (claim === 'replayed' || claim === 'too-many') return { claim }
  let answer: Promise<Buffer>
  if (claim === 'failed') answer = Promise.resolve(rejectBuffer(deps.ilpAddress, claimRejection(claim)))
  else if (prepare instanceof IlpRejection) answer = Promise.resolve(rejectBuffer(deps.ilpAddress, prepare))
  else answer = runPipeline(from, raw, requestId, 'claimed', prepare, deps)
  return { claim, expiresAtMs, answer: observed(from, raw, answer, startedAt, deps) }
}

/** The one observer call, for every packet answered, whichever way it ended. */
function observed(from: AccountConfig, raw: Buffer, answer: Promise<Buffer>, startedAt: number, deps: PipelineDeps): Promise<Buffer> {
  const metrics = deps.metrics
  if (metrics === undefined) return answer
  return answer.then((reply) => {
    metrics.packetDone(from, raw, reply, startedAt)
    return reply
  })
}

async function runPipeline(
  from: AccountConfig,
  raw: Buffer,
  requestId: string | undefined,
  /** 'claimed': the Request-Id was claimed before (async ILP-over-HTTP, before answering 202). */
  requestIdState: 'sync' | 'claimed',
  parsed: IlpPrepare | undefined,
  deps: PipelineDeps,
): Promise<Buffer> {
  let ctx: RoutedPacket
  try {
    const prepare = parsed ?? parsePrepare(raw)
    const base: PacketContext = { from, raw, prepare, packetId: packetIdOf(raw, requestId) }
    validatePacket(base)
    if (prepare.destination === ILDCP_DESTINATION) return await answerIldcp(base, deps)
    if (isCcpDestination(prepare.destination)) return await answerCcp(base, deps)
    // no await when the next hop is at hand: one promise less per packet
    const routed = route(base, deps)
    const { hop, candidate } = routed instanceof Promise ? await routed : routed
    const nextHop = hop.account
    // every field written out: a spread of base costs more than the rest of the step
    ctx = {
      from,
      raw,
      prepare,
      packetId: base.packetId,
      nextHop,
      nextHopRpcUrl: hop.rpcUrl,
      candidate,
      outAmount: outgoingAmount(base, nextHop, deps),
      outExpiresAt: outgoingExpiry(prepare.expiresAt, Date.now(), deps),
    }
    if (requestId !== undefined && requestIdState === 'sync') {
      const claim: RequestIdClaim = await claimRequestId(from.id, requestId, prepare.expiresAt.getTime(), SYNC_TOMBSTONE, deps)
      if (claim !== 'claimed') throw claimRejection(claim)
    }
    await reserve(ctx, deps)
  } catch (err) {
    if (err instanceof NotAPrepareError) throw err
    return rejectBuffer(deps.ilpAddress, asRejection(err, deps))
  }
  const result = await forward(ctx, deps).catch((err: unknown) => ({
    kind: 'failed' as const,
    rejection: asRejection(err, deps),
  }))
  const answer = await settle(ctx, result, deps)
  if (answer[0] === Type.TYPE_ILP_FULFILL) {
    if (ctx.nextHop.settleThreshold !== undefined) checkSettlement(ctx.nextHop, deps)
    // a Fulfill here means the ledger credited the next hop: the hosted receiver's history counts it
    if (result.kind === 'fulfill' && deps.transports.hosted?.receives(ctx) === true) deps.transports.hosted.credited(ctx)
  }
  return answer
}

/** The next hop was credited: its settlement trigger is checked off the packet's path (one script, exactly once per crossing). */
function checkSettlement(account: AccountConfig, deps: PipelineDeps): void {
  deps.settlements?.afterCredit(account).catch((err: unknown) => deps.log.warn({ err, accountId: account.id }, 'settlement check failed'))
}

function asRejection(err: unknown, deps: Pick<PipelineDeps, 'log'>): IlpRejection {
  if (err instanceof IlpRejection) return err
  deps.log.error({ err }, 'unexpected error on the packet path')
  return new IlpRejection('T00', 'internal error')
}
