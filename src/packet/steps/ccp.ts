import { CCP_CONTROL_DESTINATION, CCP_UPDATE_DESTINATION } from 'ilp-protocol-ccp'
import type { CcpHandler, PacketContext } from '../ports.js'
import { IlpRejection } from '../reject.js'

/** `peer.route.control` and `peer.route.update`: route announcements (CCP), answered here, never routed. */
export function isCcpDestination(destination: string): boolean {
  return destination === CCP_CONTROL_DESTINATION || destination === CCP_UPDATE_DESTINATION
}

/** What answering CCP takes: the responder, absent when route announcements are off. */
export interface CcpDeps {
  readonly ccp?: CcpHandler | undefined
}

/**
 * Answers a CCP message (amount 0, peer-protocol condition) with the zero
 * fulfillment. Route control only from accounts we send routes to
 * (`sendRoutes`), route updates only from accounts we take routes from
 * (`receiveRoutes`): anyone else gets F00. No balance is touched.
 */
export async function answerCcp(ctx: PacketContext, deps: CcpDeps): Promise<Buffer> {
  const { destination, amount } = ctx.prepare
  const ccp = deps.ccp
  if (ccp === undefined) throw new IlpRejection('F02', `no route to ${destination}: route announcements are off`)
  if (amount !== '0') throw new IlpRejection('F01', 'invalid packet: route messages carry amount 0')
  if (destination === CCP_CONTROL_DESTINATION) {
    if (!ctx.from.sendRoutes) throw new IlpRejection('F00', 'rejecting route control: we are configured not to send routes to you')
    return ccp.handleControl(ctx.from, ctx.prepare)
  }
  if (!ctx.from.receiveRoutes) throw new IlpRejection('F00', 'rejecting route update: we are configured not to receive routes from you')
  return ccp.handleUpdate(ctx.from, ctx.prepare)
}
