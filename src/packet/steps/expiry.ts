import type { PacketServices } from '../context.js'
import { IlpRejection } from '../reject.js'

/**
 * Outgoing expiry = min(incoming expiry - minMessageWindow, now + maxHoldTime).
 * Less than minMessageWindow left (or already expired): R02.
 */
export function outgoingExpiry(expiresAt: Date, now: number, services: PacketServices): Date {
  const incoming = expiresAt.getTime()
  if (incoming - now < services.minMessageWindowMs) {
    throw new IlpRejection('R02', `insufficient timeout: ${incoming - now} ms left, ${services.minMessageWindowMs} ms needed`)
  }
  return new Date(Math.min(incoming - services.minMessageWindowMs, now + services.maxHoldTimeMs))
}
