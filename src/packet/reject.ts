import { type IlpErrorCode, serializeIlpReject } from 'ilp-packet'
import { Writer } from 'oer-utils'

/** A reject the farm itself creates; thrown by a pipeline step, turned into an ILP Reject at the edge. */
export class IlpRejection extends Error {
  constructor(
    readonly code: IlpErrorCode,
    message: string,
    readonly data: Buffer = Buffer.alloc(0),
  ) {
    super(message)
    this.name = 'IlpRejection'
  }
}

/** F08's data: the amount received and the maximum, two UInt64s (RFC 27). */
export function amountTooLargeData(received: string, maximum: string): Buffer {
  const writer = new Writer(16)
  writer.writeUInt64(received)
  writer.writeUInt64(maximum)
  return writer.getBuffer()
}

/** Serializes a farm-created reject: triggeredBy is always the farm's own address. */
export function rejectBuffer(ilpAddress: string, rejection: IlpRejection): Buffer {
  return serializeIlpReject({
    code: rejection.code,
    triggeredBy: ilpAddress,
    message: rejection.message,
    data: rejection.data,
  })
}
