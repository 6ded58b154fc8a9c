import { hash } from 'node:crypto'
import { deserializeIlpReject, type IlpPrepare, serializeIlpPrepare, Type } from 'ilp-packet'
import { OutgoingError } from '../../http/outgoing.js'
import { Keys } from '../../store/keys.js'
import type { PacketServices, RoutedPacket } from '../context.js'
import { IlpRejection } from '../reject.js'
import { contentAt, readLengthPrefix } from '../oer-length.js'

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

/** Bytes of an OER length prefix for a length (canonical: the shortest). */
function lengthPrefixSize(length: number): number {
  if (length < 0x80) return 1
  let bytes = 1
  while (length >= 2 ** (8 * bytes)) bytes++
  return 1 + bytes
}

/** A Prepare's fixed fields: amount (UInt64), expiresAt (17 ASCII digits), condition (32 bytes). */
const FIXED_FIELDS = 8 + 17 + 32

let expiryCacheMs = NaN
let expiryCache = ''

/** The Interledger timestamp (`YYYYMMDDHHmmssSSS`, UTC) of a time, as ilp-packet writes it. */
function interledgerTime(date: Date): string {
  const ms = date.getTime()
  if (ms !== expiryCacheMs) {
    const iso = date.toISOString() // YYYY-MM-DDTHH:mm:ss.SSSZ for years 0..9999
    expiryCache = iso.length === 24 ? iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + iso.slice(20, 23) : ''
    expiryCacheMs = ms
  }
  return expiryCache
}

/**
 * The prepare the next hop gets: the farm's amount and expiry, condition,
 * destination and data untouched. When the incoming bytes are exactly what
 * ilp-packet would write for this prepare (canonical length prefixes, no
 * trailing bytes, an ASCII destination: anything a well-behaved sender
 * sends), they are copied with the two fixed-size fields written over, which
 * gives the same bytes as serializing the packet again at a fraction of the
 * cost; anything else is serialized again.
 */
export function outgoingPrepare(raw: Buffer, prepare: IlpPrepare, amount: string, expiresAt: Date): Buffer {
  const time = interledgerTime(expiresAt)
  const destinationLength = prepare.destination.length
  const contentLength = FIXED_FIELDS + lengthPrefixSize(destinationLength) + destinationLength + lengthPrefixSize(prepare.data.length) + prepare.data.length
  const contentStart = 1 + lengthPrefixSize(contentLength)
  if (time.length !== 17 || raw.length !== contentStart + contentLength || raw[0] !== Type.TYPE_ILP_PREPARE || !lengthPrefixAt(raw, 1, contentLength)) {
    return serializeIlpPrepare({ ...prepare, amount, expiresAt })
  }
  const destinationStart = contentStart + FIXED_FIELDS + lengthPrefixSize(destinationLength)
  for (let i = destinationStart; i < destinationStart + destinationLength; i++) {
    if (raw[i]! >= 0x80) return serializeIlpPrepare({ ...prepare, amount, expiresAt })
  }
  const out = Buffer.allocUnsafe(raw.length)
  raw.copy(out)
  if (amount !== prepare.amount) out.writeBigUInt64BE(BigInt(amount), contentStart)
  out.write(time, contentStart + 8, 17, 'latin1')
  return out
}

/** True when `buf` holds at `at` the canonical length prefix of `length`. */
function lengthPrefixAt(buf: Buffer, at: number, length: number): boolean {
  if (length < 0x80) return buf[at] === length
  const bytes = lengthPrefixSize(length) - 1
  if (buf[at] !== (0x80 | bytes)) return false
  let value = 0
  for (let i = 1; i <= bytes; i++) value = value * 256 + buf[at + i]!
  return value === length
}

/**
 * The fulfillment of a Fulfill, checked as ilp-packet's deserializeIlpFulfill
 * checks it (envelope, 32-byte fulfillment, data within the envelope), without
 * decoding the rest; undefined for anything that would not deserialize.
 */
export function fulfillmentOf(reply: Buffer): Buffer | undefined {
  if (reply[0] !== Type.TYPE_ILP_FULFILL) return undefined
  const contentLength = readLengthPrefix(reply, 1, reply.length)
  if (contentLength < 0) return undefined
  const start = contentAt
  const end = start + contentLength
  if (end > reply.length || contentLength < 32) return undefined
  const dataLength = readLengthPrefix(reply, start + 32, end)
  if (dataLength < 0 || contentAt + dataLength > end) return undefined
  return reply.subarray(start, start + 32)
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
