import type { PacketServices, RoutedPacket } from '../context.js'
import { IlpRejection, rejectBuffer } from '../reject.js'
import type { ForwardResult } from './forward.js'

/**
 * One Lua call finishes the packet: fulfill credits the next hop, anything
 * else refunds the sender. Returns the bytes to send upstream: the next hop's
 * own Fulfill or Reject unchanged, or the farm's reject.
 */
export async function settle(ctx: RoutedPacket, result: ForwardResult, services: PacketServices): Promise<Buffer> {
  const kind = result.kind === 'fulfill' ? 'fulfill' : 'reject'
  const outcome = await services.resolver.resolve(kind, ctx.from.id, ctx.packetId, ctx.nextHop.id)
  if (result.kind === 'fulfill') {
    // 'gone': the entry was already refunded (expired and swept); the sender got its money back.
    if (outcome === 'gone') return rejectBuffer(services.ilpAddress, new IlpRejection('R00', 'packet expired before it settled'))
    return result.raw
  }
  if (result.kind === 'reject') return result.raw
  return rejectBuffer(services.ilpAddress, result.rejection)
}
