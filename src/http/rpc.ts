import type { FastifyInstance } from 'fastify'
import type { AccountConfig } from '../config/schema.js'
import type { PacketServices } from '../packet/context.js'
import { dispatchBody } from '../rpc/dispatch.js'
import { errorResponse, UNAUTHORIZED } from '../rpc/protocol.js'
import { bearerToken, tokenDigest } from './auth.js'

/** A batch or a full-size sendPrepare (32767 bytes of data as base64) fits well within this. */
export const MAX_RPC_BODY_BYTES = 1_000_000

/**
 * JSON-RPC 2.0 at `POST /rpc` (docs/JSON-RPC.md). The bearer token is an
 * account's `incoming.token` (the one of ILP-over-HTTP, kept as a SHA-256
 * digest) and names the account every method acts on; no param can name
 * another. No or an unknown token: HTTP 401. Answers are HTTP 200 (errors
 * included), or 204 when there is nothing to answer (notifications only).
 */
export function jsonRpc(services: PacketServices) {
  // digest (hex) → account. A lookup by the digest of the presented token reveals nothing about the
  // stored tokens' bytes; a token shared by two accounts would be ambiguous, so neither may use it here.
  const byDigest = new Map<string, AccountConfig>()
  const shared = new Set<string>()
  for (const account of services.accounts.values()) {
    if (!account.incoming) continue
    const key = tokenDigest(account.incoming.token).toString('hex')
    if (byDigest.has(key)) shared.add(key)
    byDigest.set(key, account)
  }
  for (const key of shared) byDigest.delete(key)
  if (shared.size > 0) services.log.warn('some accounts share an incoming.token: those tokens are refused at /rpc')

  return async function plugin(app: FastifyInstance): Promise<void> {
    // keep the body as text: a body that is not JSON is a JSON-RPC parse error (-32700), not fastify's 400
    app.removeContentTypeParser(['application/json'])
    app.addContentTypeParser(['application/json', 'application/json-rpc'], { parseAs: 'string', bodyLimit: MAX_RPC_BODY_BYTES }, (_req, body, done) =>
      done(null, body),
    )

    app.post<{ Body: string }>('/rpc', { bodyLimit: MAX_RPC_BODY_BYTES }, async (request, reply) => {
      const token = bearerToken(request.headers.authorization)
      const account = token === undefined ? undefined : byDigest.get(tokenDigest(token).toString('hex'))
      if (account === undefined) {
        return reply.code(401).send(errorResponse(null, { code: UNAUTHORIZED, message: 'Unauthorized: Authorization: Bearer <the account token> is required' }))
      }
      const answer = await dispatchBody(typeof request.body === 'string' ? request.body : '', { account, services })
      if (answer === undefined) return reply.code(204).send()
      return reply.code(200).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(answer))
    })
  }
}
