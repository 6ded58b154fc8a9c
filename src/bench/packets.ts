/**
 * What the bench sends and how it is answered: one unique prepare per
 * request, fulfilled by the receiver role with sha256(secret || data), so
 * that the bench, the receiver and the farm all check the same fulfillment.
 */
import { createHash, randomBytes } from 'node:crypto'
import { deserializeIlpReject, serializeIlpPrepare, Type } from 'ilp-packet'

/** The receiver's secret, handed to its process in the environment (hex). */
export const ENV_SECRET = 'ILP_BENCH_SECRET'
export const SENDER_TOKEN = 'bench-sender-token'
export const RECEIVER_TOKEN = 'bench-farm-to-receiver-token'
export const DESTINATION = 'test.receiver.bench'
export const AMOUNT = '10'
export const EXPIRY_MS = 30_000
export const OCTET = 'application/octet-stream'

export function fulfillmentFor(secret: Buffer, data: Buffer): Buffer {
  return createHash('sha256').update(secret).update(data).digest()
}

/** Unique prepares: a per-bench nonce and a counter in the data, the condition of the receiver's fulfillment. */
export class PacketFactory {
  private readonly nonce = randomBytes(8)
  private counter = 0n

  constructor(private readonly secret: Buffer) {}

  next(): Buffer {
    const data = Buffer.alloc(16)
    this.nonce.copy(data, 0)
    data.writeBigUInt64BE(this.counter++, 8)
    const fulfillment = fulfillmentFor(this.secret, data)
    return serializeIlpPrepare({
      destination: DESTINATION,
      amount: AMOUNT,
      executionCondition: createHash('sha256').update(fulfillment).digest(),
      expiresAt: new Date(Date.now() + EXPIRY_MS),
      data,
    })
  }
}

/** How a target answered one request: 'fulfill', 'reject <code>', 'http <status>' or a malformed answer. */
export function outcomeOf(status: number, body: Buffer): string {
  if (status !== 200) return `http ${status}`
  if (body[0] === Type.TYPE_ILP_FULFILL) return 'fulfill'
  if (body[0] === Type.TYPE_ILP_REJECT) {
    try {
      return `reject ${deserializeIlpReject(body).code}`
    } catch {
      return 'bad reject'
    }
  }
  return 'bad answer'
}
