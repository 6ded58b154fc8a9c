import type { HopOutcome } from '../../routing/stats.js'
import type { RouteChooser, RoutedPacket } from '../ports.js'
import { IlpRejection, rejectBuffer } from '../reject.js'
import type { Resolver } from '../resolver.js'
import type { ForwardResult } from './forward.js'

/** Time kept for the answer to reach the sender before its packet expires. */
const ANSWER_MARGIN_MS = 500

/** What settling takes: the route chooser's counters, the resolver, the farm's address for its own rejects. */
export interface SettleDeps {
  readonly routes: Pick<RouteChooser, 'record'>
  readonly resolver: Pick<Resolver, 'resolve'>
  readonly ilpAddress: string
}

/**
 * The ledger finishes the packet (one chained call, or one per account on a
 * cluster): fulfill credits the next hop, anything else refunds the sender. Returns the bytes to send upstream: the next hop's
 * own Fulfill or Reject unchanged, or the farm's reject. The outcome is
 * counted for the route candidate first (in memory: no Redis call here).
 */
export async function settle(ctx: RoutedPacket, result: ForwardResult, deps: SettleDeps): Promise<Buffer> {
  deps.routes.record(ctx.candidate, hopOutcome(result))
  const kind = result.kind === 'fulfill' ? 'fulfill' : 'reject'
  // a fulfill whose landing is not confirmed may be retried until shortly before the sender gives up
  const outcome = await deps.resolver.resolve(kind, ctx.from.id, ctx.packetId, ctx.nextHop.id, { answerByMs: ctx.prepare.expiresAt.getTime() - ANSWER_MARGIN_MS })
  if (result.kind === 'fulfill') {
    // 'gone': the entry was already refunded (expired and swept); the sender got its money back.
    if (outcome === 'gone') return rejectBuffer(deps.ilpAddress, new IlpRejection('R00', 'packet expired before it settled'))
    if (outcome === 'unreplicated') return rejectBuffer(deps.ilpAddress, new IlpRejection('T00', 'the balance store did not confirm the payment in time; try again'))
    return result.raw
  }
  if (result.kind === 'reject') return result.raw
  return rejectBuffer(deps.ilpAddress, result.rejection)
}

/**
 * What the answer says about the next hop: a fulfill is a success; T01/T02
 * (the hop's, or the farm's own for an unreachable hop or a bad answer) and
 * the farm's own T00 (the hop answered HTTP 5xx) a transient failure; R00 (the hop's, or no answer in time) and F05 (a wrong
 * fulfillment) a failure; anything else (F-codes from downstream, T04, T00
 * of the farm's own store) is not the hop's fault.
 */
export function hopOutcome(result: ForwardResult): HopOutcome {
  if (result.kind === 'fulfill') return 'success'
  const code = result.kind === 'reject' ? result.code : result.rejection.code
  // the farm's own T00 for a hop that answered HTTP 5xx is the hop's fault too
  if (code === 'T01' || code === 'T02' || (code === 'T00' && result.kind === 'failed')) return 'transient-failure'
  if (code === 'R00' || (code === 'F05' && result.kind === 'failed')) return 'failure'
  return 'neutral'
}

