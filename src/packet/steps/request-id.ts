import type { Logger } from 'pino'
import { TooManyRequestIds } from '../../store/request-ids.js'
import type { RequestIdClaims } from '../ports.js'
import { IlpRejection } from '../reject.js'

/** What claiming a Request-Id takes. */
export interface RequestIdDeps {
  readonly requestIds: RequestIdClaims
  readonly log: Logger
}

/** A Request-Id claimed now, seen before, over the account's limit, or not claimed because the store failed. */
export type RequestIdClaim = 'claimed' | 'replayed' | 'too-many' | 'failed'

/**
 * A packet with a Request-Id claims it (one SET NX) before the reservation:
 * a sync packet once it is routed, an async one before the farm answers 202
 * (the claim decides between 202, 409 and 429). The claim keeps `tombstone`:
 * SYNC_TOMBSTONE, or an async packet's Callback-Url, where a reject goes if
 * the packet is swept. An id seen before from the same account, in flight or
 * finished, is never debited again. Packets without a Request-Id skip this step.
 */
export async function claimRequestId(
  accountId: string,
  requestId: string,
  expiresAtMs: number,
  tombstone: string,
  deps: RequestIdDeps,
): Promise<RequestIdClaim> {
  try {
    return (await deps.requestIds.claim(accountId, requestId, expiresAtMs, tombstone)) ? 'claimed' : 'replayed'
  } catch (err) {
    if (err instanceof TooManyRequestIds) return 'too-many'
    deps.log.error({ err }, 'request id claim failed')
    return 'failed'
  }
}

/** The reject of a packet whose Request-Id was not claimed: F00 seen before, T05 over the account's limit, T00 store failed. */
export function claimRejection(claim: Exclude<RequestIdClaim, 'claimed'>): IlpRejection {
  switch (claim) {
    case 'replayed':
      return new IlpRejection('F00', 'duplicate request id')
    case 'too-many':
      return new IlpRejection('T05', 'too many request ids for this account; retry later')
    case 'failed':
      return new IlpRejection('T00', 'internal error: balance store unavailable')
  }
}
