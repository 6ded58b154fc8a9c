import { hash } from 'node:crypto'
import { Type } from 'ilp-packet'
import type { AccountConfig } from '../config/schema.js'
import type { PacketContext, PacketServices, RoutedPacket } from './context.js'
import { IlpRejection, rejectBuffer } from './reject.js'
import { outgoingExpiry } from './steps/expiry.js'
import { forward } from './steps/forward.js'
import { answerCcp, isCcpDestination } from './steps/ccp.js'
import { answerIldcp, ILDCP_DESTINATION } from './steps/ildcp.js'
import { NotAPrepareError, parsePrepare } from './steps/parse.js'
import { outgoingAmount, route } from './steps/route.js'
import { claimRequestId } from './steps/request-id.js'
import { reserve } from './steps/reserve.js'
import { settle } from './steps/settle.js'
import { validatePacket } from './steps/validate.js'

/** Without a Request-Id, a packet is identified by its own bytes: a resent copy is the same packet. */
function packetIdOf(raw: Buffer, requestId: string | undefined): string {
  // crypto.hash: one call, no Hash object (a few times cheaper for a few hundred bytes)
  return requestId ?? hash('sha256', raw, 'base64url')
}

export interface PrepareOptions {
  /** The Request-Id was already claimed (async ILP-over-HTTP claims it before answering 202). */
  readonly requestIdClaimed?: boolean
}

/**
 * The packet path, one small step at a time: parse, validate, route, expiry,
 * claim the Request-Id (only when there is one: one SET NX), reserve (one Lua
 * call), forward, settle (one Lua call). Steps reject by throwing
 * IlpRejection; once the reservation is made, every path settles it.
 * Throws NotAPrepareError (HTTP 400) for a body that is not a Prepare.
 */
export async function handlePrepare(
  from: AccountConfig,
  raw: Buffer,
  requestId: string | undefined,
  services: PacketServices,
  opts?: PrepareOptions,
): Promise<Buffer> {
  // metrics: the one observer call, for every packet answered, whichever way it ended
  const metrics = services.metrics
  if (metrics === undefined) return runPipeline(from, raw, requestId, services, opts)
  const startedAt = performance.now()
  const answer = await runPipeline(from, raw, requestId, services, opts)
  metrics.packetDone(from, raw, answer, startedAt)
  return answer
}

async function runPipeline(
  from: AccountConfig,
  raw: Buffer,
  requestId: string | undefined,
  services: PacketServices,
  opts?: PrepareOptions,
): Promise<Buffer> {
  let ctx: RoutedPacket
  try {
    const prepare = parsePrepare(raw)
    const base: PacketContext = { from, raw, prepare, packetId: packetIdOf(raw, requestId) }
    validatePacket(base)
    if (prepare.destination === ILDCP_DESTINATION) return await answerIldcp(base, services)
    if (isCcpDestination(prepare.destination)) return await answerCcp(base, services)
    // no await when the next hop is at hand: one promise less per packet
    const routed = route(base, services)
    const { hop, candidate } = routed instanceof Promise ? await routed : routed
    const nextHop = hop.account
    ctx = {
      ...base,
      nextHop,
      nextHopRpcUrl: hop.rpcUrl,
      candidate,
      outAmount: outgoingAmount(base, nextHop, services),
      outExpiresAt: outgoingExpiry(prepare.expiresAt, Date.now(), services),
    }
    if (requestId !== undefined && opts?.requestIdClaimed !== true) await claimRequestId(ctx, services)
    await reserve(ctx, services)
  } catch (err) {
    if (err instanceof NotAPrepareError) throw err
    return rejectBuffer(services.ilpAddress, asRejection(err, services))
  }
  const result = await forward(ctx, services).catch((err: unknown) => ({
    kind: 'failed' as const,
    rejection: asRejection(err, services),
  }))
  const answer = await settle(ctx, result, services)
  if (ctx.nextHop.settleThreshold !== undefined && answer[0] === Type.TYPE_ILP_FULFILL) checkSettlement(ctx.nextHop, services)
  return answer
}

/** The next hop was credited: its settlement trigger is checked off the packet's path (one script, exactly once per crossing). */
function checkSettlement(account: AccountConfig, services: PacketServices): void {
  services.settlements?.afterCredit(account).catch((err: unknown) => services.log.warn({ err, accountId: account.id }, 'settlement check failed'))
}

function asRejection(err: unknown, services: PacketServices): IlpRejection {
  if (err instanceof IlpRejection) return err
  services.log.error({ err }, 'unexpected error on the packet path')
  return new IlpRejection('T00', 'internal error')
}
