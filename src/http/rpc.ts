import type { FastifyInstance } from 'fastify'
import type { FarmConfig } from '../config/schema.js'
import type { Onboarding } from '../onboarding/onboarding.js'
import type { PacketServices } from '../packet/context.js'
import { dispatchBody } from '../rpc/dispatch.js'
import { errorResponse, INVALID_REQUEST, UNAUTHORIZED } from '../rpc/protocol.js'
import type { CallerContext } from '../rpc/types.js'
import { baseUrlOf } from '../receiver/payment-pointer.js'
import { bearerToken } from './auth.js'

/** A batch or a full-size sendPrepare (32767 bytes of data as base64) fits well within this. */
export const MAX_RPC_BODY_BYTES = 1_000_000

const NOT_JSON = Symbol('not JSON')

/**
 * JSON-RPC 2.0 at `POST /rpc` (docs/JSON-RPC.md). The bearer token is an
 * account's `incoming.token` (the one of ILP-over-HTTP, kept as a SHA-256
 * digest) and names the account every method acts on; no param can name
 * another. An unknown token: HTTP 401. Without a token only the public
 * methods (onboarding, rpc.discover) answer; a call of any other is -32001
 * with HTTP 401. Answers are HTTP 200 (errors included), or 204 when there
 * is nothing to answer (notifications only). A body that is not JSON by its
 * Content-Type (none, text/plain, a form...) is refused with HTTP 415 and a
 * JSON-RPC error before anything is read from it as a request.
 */
export function jsonRpc(services: PacketServices, limits: FarmConfig['rpc'], onboarding?: Onboarding, payments?: CallerContext['payments']) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    // keep the body as text: a body that is not JSON is a JSON-RPC parse error (-32700), not fastify's 400
    // and text/plain (which fastify reads by default) goes to the catch-all below
    app.removeContentTypeParser(['application/json', 'text/plain'])
    app.addContentTypeParser(['application/json', 'application/json-rpc'], { parseAs: 'string', bodyLimit: MAX_RPC_BODY_BYTES }, (_req, body, done) =>
      done(null, body),
    )
    // any other type, and a body without one, reaches the route as NOT_JSON so it can answer in JSON-RPC's
    // own terms rather than with fastify's 415 body; its bytes are never read
    app.addContentTypeParser('*', (_req, _payload, done) => done(null, NOT_JSON))

    app.post<{ Body: string | typeof NOT_JSON | undefined }>('/rpc', { bodyLimit: MAX_RPC_BODY_BYTES }, async (request, reply) => {
      if (request.body === NOT_JSON || (request.body === undefined && request.headers['content-type'] === undefined)) {
        return reply
          .code(415)
          .send(errorResponse(null, { code: INVALID_REQUEST, message: 'Invalid Request: Content-Type must be application/json' }))
      }
      const token = bearerToken(request.headers.authorization)
      // looked up by the token's digest: one read of its index key, then the account (both cached)
      const account = token === undefined ? undefined : (await services.registry.byToken(token))?.account
      if (token !== undefined && account === undefined) {
        return reply.code(401).send(errorResponse(null, { code: UNAUTHORIZED, message: 'Unauthorized: the bearer token is not valid (no account has it, or it was rotated)' }))
      }
      const answer = await dispatchBody(typeof request.body === 'string' ? request.body : '', { account, services, onboarding, ...(payments ? { payments } : {}), baseUrl: baseUrlOf(services.publicUrl, request), ip: request.ip }, limits)
      if (answer === undefined) return reply.code(204).send()
      const answers = Array.isArray(answer) ? answer : [answer]
      const status = answers.every((a) => a.error?.code === UNAUTHORIZED) ? 401 : 200
      return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(answer))
    })
  }
}
