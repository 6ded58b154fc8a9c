/**
 * The OER fast path: ILP packets read and written straight from and into
 * their bytes, exactly as ilp-packet reads and writes them (canonical length
 * prefixes only), without its reader and writer objects. Each reader returns
 * undefined (or -1) where ilp-packet would throw or where it is not sure; the
 * caller then asks ilp-packet, so an unusual packet is never misread.
 */
import { type IlpPrepare, isValidIlpAddress, serializeIlpPrepare, Type } from 'ilp-packet'

/** Where the content of the last length prefix `readLengthPrefix` read starts (a live binding). */
export let contentAt = 0

/**
 * The length an OER length prefix at `at` gives, as oer-utils reads it
 * (canonical only), without allocating; -1 when the prefix is malformed or
 * runs past `end`. Sets `contentAt` to where the content starts.
 */
export function readLengthPrefix(buf: Buffer, at: number, end: number): number {
  if (at >= end) return -1
  const first = buf[at]!
  if (first < 0x80) {
    contentAt = at + 1
    return first
  }
  const bytes = first & 0x7f
  if (bytes === 0 || bytes > 6 || at + 1 + bytes > end) return -1
  let value = 0
  for (let i = 1; i <= bytes; i++) value = value * 256 + buf[at + i]!
  if (value < Math.max(128, 2 ** ((bytes - 1) * 8))) return -1
  contentAt = at + 1 + bytes
  return value
}

/** Bytes of the canonical (shortest) OER length prefix of a length. */
export function lengthPrefixSize(length: number): number {
  if (length < 0x80) return 1
  let bytes = 1
  while (length >= 2 ** (8 * bytes)) bytes++
  return 1 + bytes
}

/** True when `buf` holds at `at` the canonical length prefix of `length`. */
export function lengthPrefixAt(buf: Buffer, at: number, length: number): boolean {
  if (length < 0x80) return buf[at] === length
  const bytes = lengthPrefixSize(length) - 1
  if (buf[at] !== (0x80 | bytes)) return false
  let value = 0
  for (let i = 1; i <= bytes; i++) value = value * 256 + buf[at + i]!
  return value === length
}

/**
 * Offset of an envelope's content: after the type byte and the length
 * prefix, not checked (a counter that reads one field at a known place needs
 * no more); the packet's length when there is no prefix at all.
 */
export function contentOffset(packet: Buffer): number {
  const first = packet[1]
  if (first === undefined) return packet.length
  return first < 0x80 ? 2 : 2 + (first & 0x7f)
}

/** A Prepare's fixed fields: amount (UInt64), expiresAt (17 ASCII digits), condition (32 bytes). */
const FIXED_FIELDS = 8 + 17 + 32

/** ilp-packet's reading of an Interledger timestamp (the same arithmetic, so the same Dates and the same refusals). */
export function interledgerTimeToDate(time: string): Date | undefined {
  const date = new Date(
    Date.UTC(+time.slice(0, 4), +time.slice(4, 6) - 1, +time.slice(6, 8), +time.slice(8, 10), +time.slice(10, 12), +time.slice(12, 14), +time.slice(14, 17)),
  )
  return date.valueOf() ? date : undefined
}

let expiryCacheMs = NaN
let expiryCache = ''

/**
 * The Interledger timestamp (`YYYYMMDDHHmmssSSS`, UTC) of a time, as
 * ilp-packet writes it; '' for a year outside 0..9999. The last answer is
 * kept: a burst of packets often shares one expiry.
 */
export function interledgerTime(date: Date): string {
  const ms = date.getTime()
  if (ms !== expiryCacheMs) {
    const iso = date.toISOString() // YYYY-MM-DDTHH:mm:ss.SSSZ for years 0..9999
    expiryCache = iso.length === 24 ? iso.slice(0, 4) + iso.slice(5, 7) + iso.slice(8, 10) + iso.slice(11, 13) + iso.slice(14, 16) + iso.slice(17, 19) + iso.slice(20, 23) : ''
    expiryCacheMs = ms
  }
  return expiryCache
}

/**
 * The envelope of a packet of `type`: the end of its content, which starts at
 * contentAt, or -1 when `raw` is not one, or its content is shorter than
 * `minLength` or runs past the end.
 */
function readEnvelope(raw: Buffer, type: number, minLength: number): number {
  if (raw[0] !== type) return -1
  const contentLength = readLengthPrefix(raw, 1, raw.length)
  if (contentLength < minLength) return -1
  const end = contentAt + contentLength
  return end > raw.length ? -1 : end
}

/**
 * What ilp-packet's deserializeIlpPrepare returns for `raw`, read in one pass
 * without its reader objects; undefined where it would throw (or where this
 * reader is not sure: the caller then asks ilp-packet). Condition and data
 * are views into `raw`.
 */
export function readPrepare(raw: Buffer): IlpPrepare | undefined {
  const end = readEnvelope(raw, Type.TYPE_ILP_PREPARE, FIXED_FIELDS)
  if (end < 0) return undefined
  const start = contentAt
  const high = raw.readUInt32BE(start)
  const amount = high < 0x200000 ? String(high * 0x100000000 + raw.readUInt32BE(start + 4)) : raw.readBigUInt64BE(start).toString()
  const expiresAt = interledgerTimeToDate(raw.toString('ascii', start + 8, start + 25))
  if (expiresAt === undefined) return undefined
  const executionCondition = raw.subarray(start + 25, start + 57)
  const destinationLength = readLengthPrefix(raw, start + 57, end)
  if (destinationLength < 0 || contentAt + destinationLength > end) return undefined
  const destination = raw.toString('ascii', contentAt, contentAt + destinationLength)
  if (!isValidIlpAddress(destination)) return undefined
  const dataLength = readLengthPrefix(raw, contentAt + destinationLength, end)
  if (dataLength < 0 || contentAt + dataLength > end) return undefined
  const data = raw.subarray(contentAt, contentAt + dataLength)
  return { amount, executionCondition, expiresAt, destination, data }
}

/**
 * The prepare a connector passes on: its own amount and expiry, condition,
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

/**
 * The fulfillment of a Fulfill, checked as ilp-packet's deserializeIlpFulfill
 * checks it (envelope, 32-byte fulfillment, data within the envelope), without
 * decoding the rest; undefined for anything that would not deserialize.
 */
export function fulfillmentOf(reply: Buffer): Buffer | undefined {
  const end = readEnvelope(reply, Type.TYPE_ILP_FULFILL, 32)
  if (end < 0) return undefined
  const start = contentAt
  const dataLength = readLengthPrefix(reply, start + 32, end)
  if (dataLength < 0 || contentAt + dataLength > end) return undefined
  return reply.subarray(start, start + 32)
}
