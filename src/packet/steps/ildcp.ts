import { serve } from 'ilp-protocol-ildcp'
import type { PacketContext } from '../ports.js'
import { IlpRejection } from '../reject.js'

export const ILDCP_DESTINATION = 'peer.config'

/** Answers ILDCP (RFC 31) for child accounts: their address is <farm address>.<account id>. */
export async function answerIldcp(ctx: PacketContext, deps: { readonly ilpAddress: string }): Promise<Buffer> {
  if (ctx.from.relation !== 'child') throw new IlpRejection('F02', 'peer.config is only served to child accounts')
  return serve({
    requestPacket: ctx.raw,
    serverAddress: deps.ilpAddress,
    handler: async () => ({
      clientAddress: `${deps.ilpAddress}.${ctx.from.id}`,
      assetCode: ctx.from.assetCode,
      assetScale: ctx.from.assetScale,
    }),
  })
}
