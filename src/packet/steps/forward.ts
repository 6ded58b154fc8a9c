import { createHash } from 'node:crypto'
import { deserializeIlpFulfill, deserializeIlpReject, serializeIlpPrepare, Type } from 'ilp-packet'
import { OutgoingError } from '../../http/outgoing.js'
import { Keys } from '../../store/keys.js'
import type { PacketServices, RoutedPacket } from '../context.js'
import { IlpRejection } from '../reject.js'

/** What came back from the next hop, already checked. */
export type ForwardResult =
  | { kind: 'fulfill'; raw: Buffer }
  | { kind: 'reject'; raw: Buffer; code: string }
  | { kind: 'failed'; rejection: IlpRejection }

/**
 * Sends the prepare with the farm's amount and expiry (condition and data
 * untouched). The reply comes in the HTTP response (sync), or, for a next hop
 * with `outgoing.mode: async`, after a 202 through the callback endpoint,
 * maybe via another worker (src/async/replies.ts). Either way the answer is
 * classified the same: R00 for no answer in time or a late fulfill, T01 for
 * an unreachable or misbehaving hop, F05 for a fulfillment that does not hash
 * to the condition.
 */
export async function forward(ctx: RoutedPacket, services: PacketServices): Promise<ForwardResult> {
  let reply: Buffer
  try {
    reply = await send(ctx, services)
  } catch (err) {
    if (err instanceof OutgoingError) {
      return { kind: 'failed', rejection: new IlpRejection(err.reason === 'timeout' ? 'R00' : 'T01', err.message) }
    }
    throw err
  }
  return checkReply(ctx, reply)
}

/**
 * The transport of this next hop: its own JSON-RPC URL when one is set
 * (ilp_setRpcUrl; a cache lookup only), else ILP-over-HTTP, async or sync.
 */
function send(ctx: RoutedPacket, services: PacketServices): Promise<Buffer> {
  const prepare = { ...ctx.prepare, amount: ctx.outAmount, expiresAt: ctx.outExpiresAt }
  const deadline = ctx.outExpiresAt.getTime()
  const rpcUrl = services.userRpc?.url(ctx.nextHop.id)
  if (rpcUrl !== undefined && services.userRpc !== undefined) {
    return services.userRpc.deliver(ctx.nextHop, rpcUrl, prepare, deadline - Date.now())
  }
  const packet = serializeIlpPrepare(prepare)
  if (ctx.nextHop.outgoing?.mode === 'async') {
    return services.asyncReplies.send(ctx.nextHop, packet, deadline, Keys.hotSetField(ctx.from.id, ctx.packetId))
  }
  return services.outgoing.send(ctx.nextHop, packet, deadline - Date.now())
}

function checkReply(ctx: RoutedPacket, reply: Buffer): ForwardResult {
  try {
    if (reply[0] === Type.TYPE_ILP_FULFILL) {
      const { fulfillment } = deserializeIlpFulfill(reply)
      if (!createHash('sha256').update(fulfillment).digest().equals(ctx.prepare.executionCondition)) {
        return { kind: 'failed', rejection: new IlpRejection('F05', 'fulfillment does not match the condition') }
      }
      if (Date.now() > ctx.outExpiresAt.getTime()) {
        return { kind: 'failed', rejection: new IlpRejection('R00', 'fulfillment arrived after the packet expired') }
      }
      return { kind: 'fulfill', raw: reply }
    }
    if (reply[0] === Type.TYPE_ILP_REJECT) {
      return { kind: 'reject', raw: reply, code: deserializeIlpReject(reply).code }
    }
  } catch {
    // fall through: an unreadable answer is the next hop's fault
  }
  return { kind: 'failed', rejection: new IlpRejection('T01', 'next hop answered with an invalid ILP packet') }
}
