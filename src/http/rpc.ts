import type { FastifyInstance } from 'fastify'
import type { Onboarding } from '../onboarding/onboarding.js'
import type { PacketServices } from '../packet/context.js'
import { dispatchBody } from '../rpc/dispatch.js'
import { errorResponse, UNAUTHORIZED } from '../rpc/protocol.js'
import { bearerToken } from './auth.js'

/** A batch or a full-size sendPrepare (32767 bytes of data as base64) fits well within this. */
export const MAX_RPC_BODY_BYTES = 1_000_000

/**
 * JSON-RPC 2.0 at `POST /rpc` (docs/JSON-RPC.md). The bearer token is an
 * account's `incoming.token` (the one of ILP-over-HTTP, kept as a SHA-256
 * digest) and names the account every method acts on; no param can name
 * another. An unknown token: HTTP 401. Without a token only the public
 * methods (onboarding, rpc.discover) answer; a call of any other is -32001
 * with HTTP 401. Answers are HTTP 200 (errors included), or 204 when there
 * is nothing to answer (notifications only).
 */
export function jsonRpc(services: PacketServices, onboarding?: Onboarding) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    // keep the body as text: a body that is not JSON is a JSON-RPC parse error (-32700), not fastify's 400
    app.removeContentTypeParser(['application/json'])
    app.addContentTypeParser(['application/json', 'application/json-rpc'], { parseAs: 'string', bodyLimit: MAX_RPC_BODY_BYTES }, (_req, body, done) =>
      done(null, body),
    )

    app.post<{ Body: string }>('/rpc', { bodyLimit: MAX_RPC_BODY_BYTES }, async (request, reply) => {
      const token = bearerToken(request.headers.authorization)
      // looked up by the token's digest: one read of its index key, then the account (both cached)
      const account = token === undefined ? undefined : (await services.registry.byToken(token))?.account
      if (token !== undefined && account === undefined) {
        return reply.code(401).send(errorResponse(null, { code: UNAUTHORIZED, message: 'Unauthorized: the bearer token is not valid (no account has it, or it was rotated)' }))
      }
      const answer = await dispatchBody(typeof request.body === 'string' ? request.body : '', { account, services, onboarding })
      if (answer === undefined) return reply.code(204).send()
      const answers = Array.isArray(answer) ? answer : [answer]
      const status = answers.every((a) => a.error?.code === UNAUTHORIZED) ? 401 : 200
      return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(answer))
    })
  }
}
