import type { FastifyInstance, FastifyReply } from 'fastify'
import type { PacketServices } from '../packet/context.js'
import { handlePrepare } from '../packet/pipeline.js'
import { NotAPrepareError } from '../packet/steps/parse.js'
import { authorized, tokenDigest } from './auth.js'

/** RFC 35 caps an ILP packet well under this; interledger-rs uses the same limit. */
export const MAX_ILP_BODY_BYTES = 40_000

const ILP_CONTENT_TYPES = ['application/octet-stream', 'application/ilp+octet-stream']

function unauthorized(reply: FastifyReply): FastifyReply {
  return reply.code(401).send({ error: 'unauthorized' })
}

/** POST /accounts/:id/ilp: ILP-over-HTTP (sync mode): 200 with the Fulfill or Reject as the body. */
export function ilpOverHttp(services: PacketServices) {
  const tokenDigests = new Map<string, Buffer>()
  for (const account of services.accounts.values()) {
    if (account.incoming) tokenDigests.set(account.id, tokenDigest(account.incoming.token))
  }

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addContentTypeParser(ILP_CONTENT_TYPES, { parseAs: 'buffer', bodyLimit: MAX_ILP_BODY_BYTES }, (_req, body, done) =>
      done(null, body),
    )

    app.post<{ Params: { id: string }; Body: Buffer }>(
      '/accounts/:id/ilp',
      { bodyLimit: MAX_ILP_BODY_BYTES },
      async (request, reply) => {
        const account = services.accounts.get(request.params.id)
        // Unknown account and wrong token look the same from outside.
        if (!authorized(request.headers.authorization, account && tokenDigests.get(account.id)) || !account) {
          return unauthorized(reply)
        }
        if (!Buffer.isBuffer(request.body)) return reply.code(400).send({ error: 'body must be an ILP Prepare' })
        const requestId = request.headers['request-id']
        try {
          const answer = await handlePrepare(account, request.body, typeof requestId === 'string' ? requestId : undefined, services)
          return reply.code(200).header('content-type', 'application/octet-stream').send(answer)
        } catch (err) {
          if (err instanceof NotAPrepareError) return reply.code(400).send({ error: err.message })
          throw err
        }
      },
    )
  }
}
