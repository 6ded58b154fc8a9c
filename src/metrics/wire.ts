/**
 * Reads what the metrics need straight from the OER bytes of a packet (the
 * prepare's amount, a reject's code) so that counting a packet never decodes
 * it again nor allocates a string per packet.
 */
import { contentOffset } from '@ilp-farm/protocol'

const TYPE_PREPARE = 12
const TYPE_FULFILL = 13

/** Reject codes counted under their own name (RFC 27); any other code a peer sends is counted as `other`. */
export const REJECT_CODES = [
  'F00', 'F01', 'F02', 'F03', 'F04', 'F05', 'F06', 'F07', 'F08', 'F99',
  'T00', 'T01', 'T02', 'T03', 'T04', 'T05', 'T99',
  'R00', 'R01', 'R02', 'R99',
  'other',
] as const
export type RejectCodeLabel = (typeof REJECT_CODES)[number]

const OTHER_CODE = REJECT_CODES.length - 1

/** The three ASCII bytes of a code as one number: a Map lookup without building a string. */
const codeKey = (a: number, b: number, c: number): number => (a << 16) | (b << 8) | c

const CODE_INDEX = new Map<number, number>(
  REJECT_CODES.slice(0, OTHER_CODE).map((code, i) => [codeKey(code.charCodeAt(0), code.charCodeAt(1), code.charCodeAt(2)), i]),
)

export function isFulfill(reply: Buffer): boolean {
  return reply[0] === TYPE_FULFILL
}

/** Index into REJECT_CODES of a reject's code (the first field of the envelope); `other` when unreadable or unknown. */
export function rejectCodeIndex(reply: Buffer): number {
  const at = contentOffset(reply)
  if (reply.length < at + 3) return OTHER_CODE
  return CODE_INDEX.get(codeKey(reply[at]!, reply[at + 1]!, reply[at + 2]!)) ?? OTHER_CODE
}

/**
 * A prepare's amount (its first field, a UInt64) as a number: exact up to
 * 2^53, the nearest double above, as every Prometheus sample is. 0 when the
 * bytes are not a prepare.
 */
export function prepareAmount(prepare: Buffer): number {
  if (prepare[0] !== TYPE_PREPARE) return 0
  const at = contentOffset(prepare)
  if (prepare.length < at + 8) return 0
  return prepare.readUInt32BE(at) * 0x1_0000_0000 + prepare.readUInt32BE(at + 4)
}
