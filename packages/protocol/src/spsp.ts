/**
 * An SPSP answer (RFC 9: `destination_account` and `shared_secret`), read
 * the one way for the farm (paying a payment pointer) and the client
 * (resolveSpsp): an ILP address and exactly 32 bytes of base64.
 */
import { isValidIlpAddress } from 'ilp-packet'
import { decodeBase64 } from './json.js'

/** Where a STREAM payment goes: what an SPSP server hands out. */
export interface StreamDestination {
  destinationAccount: string
  sharedSecret: Buffer
}

/** Thrown for JSON that is not an SPSP answer; the message names the field. */
export class SpspJsonError extends Error {
  override readonly name = 'SpspJsonError'
}

/** An SPSP server's JSON answer to the destination and secret it gives; SpspJsonError if it gives none. */
export function spspFromJson(value: unknown): StreamDestination {
  const answer = (value !== null && typeof value === 'object' ? value : {}) as { destination_account?: unknown; shared_secret?: unknown }
  const destinationAccount = answer.destination_account
  if (typeof destinationAccount !== 'string' || !isValidIlpAddress(destinationAccount)) throw new SpspJsonError('destination_account must be an ILP address')
  const sharedSecret = typeof answer.shared_secret === 'string' ? decodeBase64(answer.shared_secret) : undefined
  if (sharedSecret === undefined || sharedSecret.length !== 32) throw new SpspJsonError('shared_secret must be 32 bytes as base64')
  return { destinationAccount, sharedSecret }
}
