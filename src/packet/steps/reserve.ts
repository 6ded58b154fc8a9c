import type { Logger } from 'pino'
import type { SendingLimits } from '../../store/ledger.js'
import { parallelismOf } from '../parallelism.js'
import type { PacketLedger, RoutedPacket } from '../ports.js'
import { IlpRejection } from '../reject.js'

/** What reserving takes: the ledger, this worker's shard, the farm's default sending limits. */
export interface ReserveDeps {
  readonly ledger: Pick<PacketLedger, 'prepare'>
  readonly shard: number
  /** Defaults of the accounts' sending limits (config `limits`); an account's own field wins. */
  readonly limits?: SendingLimits | undefined
  readonly log: Logger
}

/** Claims the packet id and reserves both sides (one chained call, or two on a cluster): T04, or F00 for a duplicate id. */
export async function reserve(ctx: RoutedPacket, deps: ReserveDeps): Promise<void> {
  let outcome
  try {
    outcome = await deps.ledger.prepare({
      incomingAccount: ctx.from.id,
      packetId: ctx.packetId,
      shard: deps.shard,
      inAmount: ctx.prepare.amount,
      outgoingAccount: ctx.nextHop.id,
      outAmount: ctx.outAmount,
      expiresAtMs: ctx.outExpiresAt.getTime(),
      minBalance: ctx.from.minBalance,
      maxBalance: ctx.nextHop.maxBalance,
      parallelism: parallelismOf(ctx.from),
      limits: {
        maxInFlight: ctx.from.maxInFlight ?? deps.limits?.maxInFlight,
        maxPacketsPerSecond: ctx.from.maxPacketsPerSecond ?? deps.limits?.maxPacketsPerSecond,
        maxAmountPerSecond: ctx.from.maxAmountPerSecond ?? deps.limits?.maxAmountPerSecond,
      },
    })
  } catch (err) {
    deps.log.error({ err }, 'prepare script failed')
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
