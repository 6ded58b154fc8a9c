import type { AccountConfig } from '../../config/schema.js'
import type { RouteChoice } from '../../routing/address-mapper.js'
import type { PacketContext, PacketServices } from '../context.js'
import { amountTooLargeData, IlpRejection } from '../reject.js'

/**
 * Picks the next hop through the address mapper (longest prefix, then the
 * routing policy among its candidates): F02 when there is none, when the only
 * one is the sender, or for peer.*.
 */
export function route(ctx: PacketContext, services: PacketServices): RouteChoice {
  const { destination } = ctx.prepare
  if (destination.startsWith('peer.')) throw new IlpRejection('F02', `no route to ${destination}: peer.* is never forwarded`)
  return services.routes.choose(destination, ctx.from.id, ctx.prepare.amount)
}

/** The amount the next hop receives (one to one until exchange rates exist), within its packet limit. */
export function outgoingAmount(ctx: PacketContext, hop: AccountConfig): string {
  const amount = ctx.prepare.amount
  if (hop.maxPacketAmount !== undefined && BigInt(amount) > BigInt(hop.maxPacketAmount)) {
    throw new IlpRejection('F08', 'packet amount exceeds the next hop maximum', amountTooLargeData(amount, hop.maxPacketAmount))
  }
  return amount
}
