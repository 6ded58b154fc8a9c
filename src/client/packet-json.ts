import {
  deserializeIlpPacket,
  type IlpPrepare,
  type IlpReject,
  serializeIlpFulfill,
  serializeIlpReject,
  Type,
} from 'ilp-packet'
import { z } from 'zod'
import { isValidIlpAddress } from '../util/address.js'

/**
 * ILP packets as the farm's JSON-RPC API writes them (docs/JSON-RPC.md):
 * amounts as decimal strings, binary fields as base64, expiry as ISO 8601.
 * The binary side is always ilp-packet's own codec; this file only maps
 * between its objects and the JSON shapes, and checks what comes in.
 */

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

/** Thrown for JSON that is not a valid packet; the message says which field. */
export class PacketJsonError extends Error {
  override readonly name = 'PacketJsonError'
}

const MAX_DATA_BYTES = 32767
const UINT64_MAX = 2n ** 64n - 1n
const ISO_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/
// Standard or url-safe alphabet, optional padding (the farm accepts both on input).
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

const uint64 = z
  .string()
  .regex(/^(0|[1-9][0-9]*)$/, 'must be a decimal string')
  .refine((s) => s.length <= 20 && BigInt(s) <= UINT64_MAX, 'must be a UInt64')
const base64 = z.string().refine((s) => BASE64.test(s) && s.replace(/=+$/, '').length % 4 !== 1, 'must be base64')
const address = z.string().refine(isValidIlpAddress, 'must be an ILP address')

const prepareSchema = z.object({
  amount: uint64,
  destination: address,
  executionCondition: base64,
  expiresAt: z.string().regex(ISO_DATE, 'must be an ISO 8601 timestamp'),
  data: base64.optional(),
})

const fulfillSchema = z.object({ type: z.literal('fulfill'), fulfillment: base64, data: base64.optional() })
const rejectSchema = z.object({
  type: z.literal('reject'),
  code: z.string().regex(/^[A-Z][0-9A-Z]{2}$/, 'must be an ILP error code'),
  triggeredBy: z.string().optional(),
  message: z.string().optional(),
  data: base64.optional(),
})
const replySchema = z.discriminatedUnion('type', [fulfillSchema, rejectSchema])

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]
  if (issue === undefined) return 'invalid'
  const path = issue.path.join('.')
  return path === '' ? issue.message : `${path}: ${issue.message}`
}

function bytes(value: string | undefined, field: string, exactLength?: number): Buffer {
  const buf = Buffer.from(value ?? '', 'base64')
  if (buf.length > MAX_DATA_BYTES) throw new PacketJsonError(`${field}: at most ${MAX_DATA_BYTES} bytes`)
  if (exactLength !== undefined && buf.length !== exactLength) throw new PacketJsonError(`${field}: must be ${exactLength} bytes`)
  return buf
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

/** JSON-RPC params of an incoming `ilp_receivePrepare` to an ILP Prepare; PacketJsonError if they are not one. */
export function prepareFromJson(value: unknown): IlpPrepare {
  const parsed = prepareSchema.safeParse(value)
  if (!parsed.success) throw new PacketJsonError(firstIssue(parsed.error))
  const p = parsed.data
  const expiresAt = new Date(p.expiresAt)
  if (Number.isNaN(expiresAt.getTime())) throw new PacketJsonError('expiresAt: not a valid date')
  return {
    amount: p.amount,
    destination: p.destination,
    executionCondition: bytes(p.executionCondition, 'executionCondition', 32),
    expiresAt,
    data: bytes(p.data, 'data'),
  }
}

/** A serialized Fulfill or Reject (what a data handler returns) to its JSON form. */
export function replyToJson(reply: Buffer): ReplyJson {
  const packet = deserializeIlpPacket(reply)
  if (packet.type === Type.TYPE_ILP_FULFILL) {
    return { type: 'fulfill', fulfillment: packet.data.fulfillment.toString('base64'), data: packet.data.data.toString('base64') }
  }
  if (packet.type === Type.TYPE_ILP_REJECT) return rejectToJson(packet.data)
  throw new PacketJsonError(`expected a Fulfill or Reject, got packet type ${packet.type}`)
}

export function rejectToJson(reject: IlpReject): RejectJson {
  return { type: 'reject', code: reject.code, triggeredBy: reject.triggeredBy, message: reject.message, data: reject.data.toString('base64') }
}

/** The result of `ilp_sendPrepare` to a serialized Fulfill or Reject; PacketJsonError if it is neither. */
export function replyFromJson(value: unknown): Buffer {
  const parsed = replySchema.safeParse(value)
  if (!parsed.success) throw new PacketJsonError(firstIssue(parsed.error))
  const reply = parsed.data
  if (reply.type === 'fulfill') {
    return serializeIlpFulfill({ fulfillment: bytes(reply.fulfillment, 'fulfillment', 32), data: bytes(reply.data, 'data') })
  }
  return serializeIlpReject({
    code: reply.code,
    triggeredBy: reply.triggeredBy ?? '',
    message: reply.message ?? '',
    data: bytes(reply.data, 'data'),
  })
}

/** A Reject made here (by this client), serialized: e.g. T01 when the farm could not be reached. */
export function localReject(code: string, triggeredBy: string, message: string): Buffer {
  return serializeIlpReject({ code, triggeredBy, message, data: Buffer.alloc(0) })
}
