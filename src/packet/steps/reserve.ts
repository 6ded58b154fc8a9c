import type { PacketServices, RoutedPacket } from '../context.js'
import { parallelismOf } from '../parallelism.js'
import { IlpRejection } from '../reject.js'

/** Claims the packet id and reserves both sides (one chained call, or two on a cluster): T04, or F00 for a duplicate id. */
export async function reserve(ctx: RoutedPacket, services: PacketServices): Promise<void> {
  let outcome
  try {
    outcome = await services.ledger.prepare({
      incomingAccount: ctx.from.id,
      packetId: ctx.packetId,
      shard: services.shard,
      inAmount: ctx.prepare.amount,
      outgoingAccount: ctx.nextHop.id,
      outAmount: ctx.outAmount,
      expiresAtMs: ctx.outExpiresAt.getTime(),
      minBalance: ctx.from.minBalance,
      maxBalance: ctx.nextHop.maxBalance,
      parallelism: parallelismOf(ctx.from),
      limits: {
        maxInFlight: ctx.from.maxInFlight ?? services.limits?.maxInFlight,
        maxPacketsPerSecond: ctx.from.maxPacketsPerSecond ?? services.limits?.maxPacketsPerSecond,
        maxAmountPerSecond: ctx.from.maxAmountPerSecond ?? services.limits?.maxAmountPerSecond,
      },
    })
  } catch (err) {
    services.log.error({ err }, 'prepare script failed')
    throw new IlpRejection('T00', 'internal error: balance store unavailable')
  }
  switch (outcome) {
    case 'ok':
      return
    case 'duplicate':
      throw new IlpRejection('F00', 'duplicate packet: a packet with this id is already in flight')
    case 'insufficient-balance':
      throw new IlpRejection('T04', 'insufficient liquidity: the sender has not enough balance or credit')
    case 'exceeds-max-balance':
      throw new IlpRejection('T04', 'insufficient liquidity: the next hop would exceed its maximum balance')
    case 'expired':
      throw new IlpRejection('R00', 'packet expired before it could be forwarded')
    case 'too-many-in-flight':
      throw new IlpRejection('T05', 'rate limited: too many packets in flight from this account')
    case 'rate-limited':
      throw new IlpRejection('T05', 'rate limited: too many packets per second from this account')
    case 'throughput-exceeded':
      throw new IlpRejection('T04', 'insufficient liquidity: the account sent its maximum amount this second')
  }
}
