import { SYNC_TOMBSTONE, TooManyRequestIds } from '../../store/request-ids.js'
import type { PacketServices, RoutedPacket } from '../context.js'
import { IlpRejection } from '../reject.js'

/**
 * A packet with a Request-Id claims it before the reservation (one SET NX):
 * an id seen before from the same account, in flight or finished, gets F00
 * and is never debited again; an account over its Request-Id limit gets
 * T05. Packets without a Request-Id skip this step.
 */
export async function claimRequestId(ctx: RoutedPacket, services: PacketServices): Promise<void> {
  let claimed: boolean
  try {
    claimed = await services.requestIds.claim(ctx.from.id, ctx.packetId, ctx.prepare.expiresAt.getTime(), SYNC_TOMBSTONE)
  } catch (err) {
    if (err instanceof TooManyRequestIds) throw new IlpRejection('T05', err.message)
    services.log.error({ err }, 'request id claim failed')
    throw new IlpRejection('T00', 'internal error: balance store unavailable')
  }
  if (!claimed) throw new IlpRejection('F00', 'duplicate request id')
}
