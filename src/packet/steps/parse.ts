import { readPrepare } from '@ilp-farm/protocol'
import { deserializeEnvelope, deserializeIlpPrepare, type IlpPrepare, Type } from 'ilp-packet'
import { IlpRejection } from '../reject.js'

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
