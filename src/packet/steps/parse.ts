import { deserializeEnvelope, deserializeIlpPrepare, type IlpPrepare, isValidIlpAddress, Type } from 'ilp-packet'
import { IlpRejection } from '../reject.js'
import { contentAt, readLengthPrefix } from '../oer-length.js'

/** The body is not an ILP Prepare at all: the HTTP layer answers 400. */
export class NotAPrepareError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'NotAPrepareError'
  }
}

/**
 * A body whose envelope is not a readable Prepare is refused at the HTTP level;
 * a Prepare envelope whose contents do not parse is an ILP F01.
 */
export function parsePrepare(raw: Buffer): IlpPrepare {
  // the usual case, one pass; anything it does not take is read (and classified) by ilp-packet below
  let prepare = readPrepare(raw)
  if (prepare === undefined) {
    let type: number
    try {
      type = deserializeEnvelope(raw).type
    } catch {
      throw new NotAPrepareError('body is not an ILP packet')
    }
    if (type !== Type.TYPE_ILP_PREPARE) throw new NotAPrepareError(`body is an ILP packet of type ${type}, not a Prepare`)
    try {
      prepare = deserializeIlpPrepare(raw)
    } catch (err) {
      throw new IlpRejection('F01', `invalid packet: ${(err as Error).message}`)
    }
  }
  if (Number.isNaN(prepare.expiresAt.getTime())) throw new IlpRejection('F01', 'invalid packet: bad expiresAt')
  return prepare
}

/** ilp-packet's reading of an Interledger timestamp (the same arithmetic, so the same Dates and the same refusals). */
function interledgerTimeToDate(time: string): Date | undefined {
  const date = new Date(
    Date.UTC(+time.slice(0, 4), +time.slice(4, 6) - 1, +time.slice(6, 8), +time.slice(8, 10), +time.slice(10, 12), +time.slice(12, 14), +time.slice(14, 17)),
  )
  return date.valueOf() ? date : undefined
}

/**
 * What ilp-packet's deserializeIlpPrepare returns for `raw`, read in one pass
 * without its reader objects; undefined where it would throw (or where this
 * reader is not sure: the caller then asks ilp-packet).
 */
export function readPrepare(raw: Buffer): IlpPrepare | undefined {
  if (raw[0] !== Type.TYPE_ILP_PREPARE) return undefined
  const contentLength = readLengthPrefix(raw, 1, raw.length)
  if (contentLength < 0) return undefined
  const start = contentAt
  const end = start + contentLength
  if (end > raw.length || contentLength < 8 + 17 + 32) return undefined
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
