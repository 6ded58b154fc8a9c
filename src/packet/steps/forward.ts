import { hash } from 'node:crypto'
import { fulfillmentOf, outgoingPrepare } from '@ilp-farm/protocol'
import { deserializeIlpReject, Type } from 'ilp-packet'
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
 * classified the same: R00 for no answer in time or a late fulfill, T00 for
 * an HTTP 5xx, T01 for an unreachable or misbehaving hop, F05 for a
 * fulfillment that does not hash to the condition.
 */
export async function forward(ctx: RoutedPacket, services: PacketServices): Promise<ForwardResult> {
  let reply: Buffer
  try {
    reply = await send(ctx, services)
  } catch (err) {
    if (err instanceof OutgoingError) {
      if (err.reason === 'timeout') return { kind: 'failed', rejection: new IlpRejection('R00', err.message) }
      // What went wrong names the farm's network (a refused address) or is the hop's own text (an RPC URL's
      // error message): the operator reads it in the log, the sender gets a message of the farm's own.
      services.log.warn({ nextHop: ctx.nextHop.id, reason: err.reason, detail: err.message }, 'next hop failed')
      return {
        kind: 'failed',
        rejection:
          err.reason === 'unavailable'
            ? new IlpRejection('T00', 'the next hop is temporarily unavailable')
            : new IlpRejection('T01', 'no valid answer from the next hop'),
      }
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
  const deadline = ctx.outExpiresAt.getTime()
  const rpcUrl = ctx.nextHopRpcUrl
  if (rpcUrl !== undefined && services.userRpc !== undefined) {
    const prepare = { ...ctx.prepare, amount: ctx.outAmount, expiresAt: ctx.outExpiresAt }
    return services.userRpc.deliver(ctx.nextHop, rpcUrl, prepare, deadline - Date.now())
  }
  const packet = outgoingPrepare(ctx.raw, ctx.prepare, ctx.outAmount, ctx.outExpiresAt)
  if (ctx.nextHop.outgoing?.mode === 'async') {
    return services.asyncReplies.send(ctx.nextHop, packet, deadline, Keys.hotSetField(ctx.from.id, ctx.packetId))
  }
  return services.outgoing.send(ctx.nextHop, packet, deadline - Date.now())
}

function checkReply(ctx: RoutedPacket, reply: Buffer): ForwardResult {
  try {
    if (reply[0] === Type.TYPE_ILP_FULFILL) {
      const fulfillment = fulfillmentOf(reply)
      if (fulfillment === undefined) return invalidReply()
      // one-shot hash, compared as binary (latin1) strings: a fraction of createHash + Buffer.equals
      if (hash('sha256', fulfillment, 'binary') !== ctx.prepare.executionCondition.toString('binary')) {
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
  return invalidReply()
}

function invalidReply(): ForwardResult {
  return { kind: 'failed', rejection: new IlpRejection('T01', 'next hop answered with an invalid ILP packet') }
}
