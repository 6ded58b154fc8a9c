import { hash } from 'node:crypto'
import { fulfillmentOf, outgoingPrepare } from '@ilp-farm/protocol'
import { deserializeIlpReject, Type } from 'ilp-packet'
import type { Logger } from 'pino'
import { type NextHopTransport, type NextHopTransports, OutgoingError, type RoutedPacket } from '../ports.js'
import { IlpRejection } from '../reject.js'

/** What came back from the next hop, already checked. */
export type ForwardResult =
  | { kind: 'fulfill'; raw: Buffer }
  | { kind: 'reject'; raw: Buffer; code: string }
  | { kind: 'failed'; rejection: IlpRejection }

/** What forwarding takes: the transports, and the log for what went wrong at a next hop. */
export interface ForwardDeps {
  readonly transports: NextHopTransports
  readonly log: Logger
}

/**
 * Sends the prepare with the farm's amount and expiry (condition and data
 * untouched) through the next hop's transport (transportOf). The reply comes
 * in the HTTP response (sync), or, for a next hop with `outgoing.mode:
 * async`, after a 202 through the callback endpoint, maybe via another
 * worker, or in a user's JSON-RPC response. Either way the answer is
 * classified the same: R00 for no answer in time or a late fulfill, T00 for
 * an HTTP 5xx, T01 for an unreachable or misbehaving hop, F05 for a
 * fulfillment that does not hash to the condition.
 */
export async function forward(ctx: RoutedPacket, deps: ForwardDeps): Promise<ForwardResult> {
  let reply: Buffer
  try {
    reply = await transportOf(ctx, deps.transports).forward(ctx, outgoingPrepare(ctx.raw, ctx.prepare, ctx.outAmount, ctx.outExpiresAt))
  } catch (err) {
    if (err instanceof OutgoingError) {
      if (err.reason === 'timeout') return { kind: 'failed', rejection: new IlpRejection('R00', err.message) }
      // What went wrong names the farm's network (a refused address) or is the hop's own text (an RPC URL's
      // error message): the operator reads it in the log, the sender gets a message of the farm's own.
      deps.log.warn({ nextHop: ctx.nextHop.id, reason: err.reason, detail: err.message }, 'next hop failed')
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
 * The transport of this packet: the farm's own receiver when it is addressed
 * to the next hop's hosted address, else its user's own JSON-RPC URL when one
 * is set (ilp_setRpcUrl; the route step read it from the cache), else
 * ILP-over-HTTP, async for `outgoing.mode: async`, else sync.
 */
export function transportOf(ctx: RoutedPacket, transports: NextHopTransports): NextHopTransport {
  if (transports.hosted?.receives(ctx) === true) return transports.hosted
  if (ctx.nextHopRpcUrl !== undefined && transports.userRpc !== undefined) return transports.userRpc
  return ctx.nextHop.outgoing?.mode === 'async' ? transports.async : transports.sync
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
