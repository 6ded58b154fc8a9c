import { isValidIlpAddress } from '../../util/address.js'
import type { PacketContext } from '../ports.js'
import { amountTooLargeData, IlpRejection } from '../reject.js'

/** Semantic checks on the packet and the sender's own packet limit: F01, F08. */
export function validatePacket(ctx: PacketContext): void {
  const { destination, amount } = ctx.prepare
  if (!isValidIlpAddress(destination)) throw new IlpRejection('F01', 'invalid packet: destination is not an ILP address')
  const max = ctx.from.maxPacketAmount
  if (max !== undefined && BigInt(amount) > BigInt(max)) {
    throw new IlpRejection('F08', 'packet amount exceeds maximum', amountTooLargeData(amount, max))
  }
}
