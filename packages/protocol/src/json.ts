/**
 * ILP packets in their JSON form, as the farm's JSON-RPC API writes them
 * (docs/JSON-RPC.md): amounts as decimal strings, binary fields as base64,
 * expiry as ISO 8601. The binary side is always ilp-packet's own codec; this
 * file maps between its objects and the JSON shapes and checks, field by
 * field, what comes in: the farm reads `ilp_sendPrepare` params and a user's
 * `ilp_receivePrepare` answers with it, the client the other two directions.
 */
import { deserializeIlpPacket, type IlpPrepare, type IlpReject, isValidIlpAddress, serializeIlpFulfill, serializeIlpReject, Type } from 'ilp-packet'

/** Params of `ilp_sendPrepare` / `ilp_receivePrepare`. */
export interface PrepareJson {
  amount: string
  destination: string
  executionCondition: string
  expiresAt: string
  data: string
}

export interface FulfillJson {
  type: 'fulfill'
  fulfillment: string
  data: string
}

export interface RejectJson {
  type: 'reject'
  code: string
  triggeredBy: string
  message: string
  data: string
}

export type ReplyJson = FulfillJson | RejectJson

/** Thrown for JSON that is not a valid packet; the message names the field and what it must be. */
export class PacketJsonError extends Error {
  override readonly name = 'PacketJsonError'
}

/** Most bytes of a packet's data (RFC 27). */
export const MAX_DATA_BYTES = 32767
const UINT64_MAX = 2n ** 64n - 1n
/** An ISO 8601 timestamp with a time zone, as `Date.prototype.toISOString` writes it (fractions and offsets allowed). */
export const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
// Standard or url-safe alphabet, optional padding: both are taken on input.
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/
const ERROR_CODE = /^[A-Z][0-9A-Z]{2}$/

/** A canonical UInt64 decimal string ("0", "42"; not "007", "+1", "1e3", nor above 2^64 - 1). */
export function isUInt64String(value: string): boolean {
  return /^(0|[1-9][0-9]*)$/.test(value) && value.length <= 20 && BigInt(value) <= UINT64_MAX
}

/** Base64 (standard or url-safe, padded or not) to bytes; undefined for anything else. */
export function decodeBase64(value: string): Buffer | undefined {
  if (!BASE64.test(value) || value.replace(/=+$/, '').length % 4 === 1) return undefined
  return Buffer.from(value, 'base64')
}

/** 32 bytes as 64 hex digits or as base64 (standard or url-safe), else undefined. */
export function decodeCondition(value: string): Buffer | undefined {
  if (/^[0-9a-fA-F]{64}$/.test(value)) return Buffer.from(value, 'hex')
  if (/^[A-Za-z0-9+/_-]{43}=?$/.test(value)) {
    const bytes = Buffer.from(value, 'base64')
    if (bytes.length === 32) return bytes
  }
  return undefined
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** An optional data field: absent is empty; base64 of at most MAX_DATA_BYTES. */
function dataField(value: unknown): Buffer {
  if (value === undefined) return Buffer.alloc(0)
  const bytes = typeof value === 'string' ? decodeBase64(value) : undefined
  if (bytes === undefined) throw new PacketJsonError('data must be base64')
  if (bytes.length > MAX_DATA_BYTES) throw new PacketJsonError(`data must be at most ${MAX_DATA_BYTES} bytes`)
  return bytes
}

export function prepareToJson(prepare: IlpPrepare): PrepareJson {
  return {
    amount: prepare.amount,
    destination: prepare.destination,
    executionCondition: prepare.executionCondition.toString('base64'),
    expiresAt: prepare.expiresAt.toISOString(),
    data: prepare.data.toString('base64'),
  }
}

/**
 * A prepare's JSON form (`ilp_sendPrepare` / `ilp_receivePrepare` params) to
 * an ILP Prepare; PacketJsonError if it is not one. The condition may also be
 * 64 hex digits; data may be left out (empty). Other fields are ignored.
 */
export function prepareFromJson(value: unknown): IlpPrepare {
  if (!isPlainObject(value)) throw new PacketJsonError('a prepare must be an object')
  const { amount, destination, executionCondition, expiresAt, data } = value
  if (typeof amount !== 'string' || !isUInt64String(amount)) throw new PacketJsonError('amount must be a decimal string, a UInt64')
  if (typeof destination !== 'string' || !isValidIlpAddress(destination)) throw new PacketJsonError('destination must be an ILP address (RFC 15)')
  const condition = typeof executionCondition === 'string' ? decodeCondition(executionCondition) : undefined
  if (condition === undefined) throw new PacketJsonError('executionCondition must be 32 bytes as 64 hex digits or base64')
  const expiry = typeof expiresAt === 'string' && ISO_DATE.test(expiresAt) ? new Date(expiresAt) : undefined
  if (expiry === undefined || Number.isNaN(expiry.getTime())) {
    throw new PacketJsonError('expiresAt must be an ISO 8601 timestamp such as 2030-01-01T00:00:00.000Z')
  }
  return { amount, destination, executionCondition: condition, expiresAt: expiry, data: dataField(data) }
}

export function rejectToJson(reject: IlpReject): RejectJson {
  return { type: 'reject', code: reject.code, triggeredBy: reject.triggeredBy, message: reject.message, data: reject.data.toString('base64') }
}

/** A serialized Fulfill or Reject to its JSON form; PacketJsonError for another packet (ilp-packet's error for bytes that are none). */
export function replyToJson(reply: Buffer): ReplyJson {
  const packet = deserializeIlpPacket(reply)
  if (packet.type === Type.TYPE_ILP_FULFILL) {
    return { type: 'fulfill', fulfillment: packet.data.fulfillment.toString('base64'), data: packet.data.data.toString('base64') }
  }
  if (packet.type === Type.TYPE_ILP_REJECT) return rejectToJson(packet.data)
  throw new PacketJsonError(`expected a Fulfill or Reject, got packet type ${packet.type}`)
}

/**
 * A reply's JSON form (`ilp_sendPrepare`'s result, `ilp_receivePrepare`'s
 * answer) to a serialized Fulfill or Reject; PacketJsonError if it is
 * neither. triggeredBy, message and data may be left out (empty).
 */
export function replyFromJson(value: unknown): Buffer {
  if (!isPlainObject(value)) throw new PacketJsonError('a reply must be an object')
  const data = dataField(value.data)
  if (value.type === 'fulfill') {
    const fulfillment = typeof value.fulfillment === 'string' ? decodeBase64(value.fulfillment) : undefined
    if (fulfillment === undefined || fulfillment.length !== 32) throw new PacketJsonError('fulfillment must be 32 bytes as base64')
    return serializeIlpFulfill({ fulfillment, data })
  }
  if (value.type === 'reject') {
    const { code, triggeredBy, message } = value
    if (typeof code !== 'string' || !ERROR_CODE.test(code)) throw new PacketJsonError('code must be an ILP error code such as F99')
    if (triggeredBy !== undefined && (typeof triggeredBy !== 'string' || (triggeredBy !== '' && !isValidIlpAddress(triggeredBy)))) {
      throw new PacketJsonError('triggeredBy must be an ILP address')
    }
    if (message !== undefined && typeof message !== 'string') throw new PacketJsonError('message must be a string')
    try {
      return serializeIlpReject({ code, triggeredBy: triggeredBy ?? '', message: message ?? '', data })
    } catch (err) {
      throw new PacketJsonError(`the reject cannot be serialized: ${(err as Error).message}`)
    }
  }
  throw new PacketJsonError('type must be "fulfill" or "reject"')
}

/** A Reject made locally (not received), serialized: e.g. T01 when the farm could not be reached. */
export function localReject(code: string, triggeredBy: string, message: string): Buffer {
  return serializeIlpReject({ code, triggeredBy, message, data: Buffer.alloc(0) })
}
