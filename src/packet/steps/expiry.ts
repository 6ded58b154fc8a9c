import { IlpRejection } from '../reject.js'

/** The farm's time limits (config `minMessageWindowMs`, `maxHoldTimeMs`). */
export interface ExpiryDeps {
  readonly minMessageWindowMs: number
  readonly maxHoldTimeMs: number
}

/**
 * Outgoing expiry = min(incoming expiry - minMessageWindow, now + maxHoldTime).
 * Less than minMessageWindow left (or already expired): R02.
 */
export function outgoingExpiry(expiresAt: Date, now: number, deps: ExpiryDeps): Date {
  const incoming = expiresAt.getTime()
  if (incoming - now < deps.minMessageWindowMs) {
    throw new IlpRejection('R02', `insufficient timeout: ${incoming - now} ms left, ${deps.minMessageWindowMs} ms needed`)
  }
  return new Date(Math.min(incoming - deps.minMessageWindowMs, now + deps.maxHoldTimeMs))
}
