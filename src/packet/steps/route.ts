import type { AccountConfig } from '../../config/schema.js'
import { convertForHop } from '../../rates/rates.js'
import type { RouteChoice } from '../../routing/address-mapper.js'
import type { Rates } from '../../rates/rates.js'
import type { PacketContext, RouteChooser } from '../ports.js'
import { amountTooLargeData, IlpRejection } from '../reject.js'

/** What routing takes: the route chooser, and the rates for the amount the next hop gets. */
export interface RouteDeps {
  readonly routes: Pick<RouteChooser, 'choose'>
  readonly rates: Pick<Rates, 'between'>
}

/**
 * Picks the next hop through the address mapper (longest prefix, or a child
 * by its address, then the routing policy among the candidates): F02 when
 * there is none, when the only one is the sender, or for peer.*. A next hop
 * not in this worker's cache costs one Redis round trip.
 */
export function route(ctx: PacketContext, deps: Pick<RouteDeps, 'routes'>): RouteChoice | Promise<RouteChoice> {
  const { destination } = ctx.prepare
  if (destination.startsWith('peer.')) throw new IlpRejection('F02', `no route to ${destination}: peer.* is never forwarded`)
  return deps.routes.choose(destination, ctx.from.id, ctx.prepare.amount)
}

/**
 * The amount the next hop receives: the incoming amount converted at the rate
 * between the two accounts' assets (rates.ts, precomputed: no Redis, a few
 * BigInt operations), rounded down, within the next hop's packet limit.
 * F02 no rate between the codes; F08 above the next hop's maxPacketAmount
 * (data: the incoming amount and the limit in incoming units, rounded down);
 * R01 when a non-zero amount converts to zero.
 */
export function outgoingAmount(ctx: PacketContext, hop: AccountConfig, deps: Pick<RouteDeps, 'rates'>): string {
  const amount = ctx.prepare.amount
  const rate = deps.rates.between(ctx.from, hop)
  // the usual case, same asset and no limit: the amount passes as it came
  if (rate?.identity === true && hop.maxPacketAmount === undefined) return amount
  const result = convertForHop(BigInt(amount), rate, ctx.from, hop)
  if (result.ok) return result.amount.toString()
  const { failure } = result
  if (failure.code === 'F08') {
    throw new IlpRejection('F08', failure.message, amountTooLargeData(failure.received.toString(), failure.maximum.toString()))
  }
  throw new IlpRejection(failure.code, failure.message)
}
