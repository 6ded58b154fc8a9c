import { serve } from 'ilp-protocol-ildcp'
import type { PacketContext, PacketServices } from '../context.js'
import { IlpRejection } from '../reject.js'

export const ILDCP_DESTINATION = 'peer.config'

/** Answers ILDCP (RFC 31) for child accounts: their address is <farm address>.<account id>. */
export async function answerIldcp(ctx: PacketContext, services: PacketServices): Promise<Buffer> {
  if (ctx.from.relation !== 'child') throw new IlpRejection('F02', 'peer.config is only served to child accounts')
  return serve({
    requestPacket: ctx.raw,
    serverAddress: services.ilpAddress,
    handler: async () => ({
      clientAddress: `${services.ilpAddress}.${ctx.from.id}`,
      assetCode: ctx.from.assetCode,
      assetScale: ctx.from.assetScale,
    }),
  })
}
