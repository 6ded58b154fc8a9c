import type { AccountConfig } from '../../config/schema.js'
import type { PacketContext, PacketServices } from '../context.js'
import { amountTooLargeData, IlpRejection } from '../reject.js'

/** Picks the next hop by longest prefix: F02 when there is none, when it is the sender, or for peer.*. */
export function route(ctx: PacketContext, services: PacketServices): AccountConfig {
  const { destination } = ctx.prepare
  if (destination.startsWith('peer.')) throw new IlpRejection('F02', `no route to ${destination}: peer.* is never forwarded`)
  const hopId = services.routes.lookup(destination)
  const hop = hopId === undefined ? undefined : services.accounts.get(hopId)
  if (!hop || !hop.outgoing) throw new IlpRejection('F02', `no route to ${destination}`)
  if (hop.id === ctx.from.id) throw new IlpRejection('F02', `no route to ${destination}: it leads back to the sender`)
  return hop
}

/** The amount the next hop receives (one to one until exchange rates exist), within its packet limit. */
export function outgoingAmount(ctx: PacketContext, hop: AccountConfig): string {
  const amount = ctx.prepare.amount
  if (hop.maxPacketAmount !== undefined && BigInt(amount) > BigInt(hop.maxPacketAmount)) {
    throw new IlpRejection('F08', 'packet amount exceeds the next hop maximum', amountTooLargeData(amount, hop.maxPacketAmount))
  }
  return amount
}
