import { deserializeIlpFulfill, deserializeIlpReject, Type } from 'ilp-packet'
import type { FastifyInstance, FastifyReply } from 'fastify'
import { callbackUrlAllowed } from '../async/callback-policy.js'
import { isRequestId, normalizeRequestId, parseCallbackUrl, prefersAsync, singleHeader } from '../async/headers.js'
import type { AsyncInbound } from '../async/inbound.js'
import type { AccountConfig } from '../config/schema.js'
import type { AsyncReplies } from '../async/replies.js'
import type { PacketServices } from '../packet/context.js'
import { handlePrepare } from '../packet/pipeline.js'
import { NotAPrepareError } from '../packet/steps/parse.js'
import { authorized } from './auth.js'

/** RFC 35 caps an ILP packet well under this; interledger-rs uses the same limit. */
export const MAX_ILP_BODY_BYTES = 40_000

/** The content type of the farm's ILP answers. */
export const ILP_CONTENT_TYPE = 'application/octet-stream'
/** The content types an ILP packet may come with. */
export const ILP_CONTENT_TYPES = [ILP_CONTENT_TYPE, 'application/ilp+octet-stream']

function unauthorized(reply: FastifyReply): FastifyReply {
  return reply.code(401).send({ error: 'unauthorized' })
}

function badRequest(reply: FastifyReply, error: string): FastifyReply {
  return reply.code(400).send({ error })
}

/** What a sync prepare gets: its Fulfill or Reject, or a 400 for a request that is not one. */
export type SyncAnswer = { readonly status: 200; readonly packet: Buffer } | { readonly status: 400; readonly error: string }

/**
 * A sync prepare of an authorized account: the Request-Id, when there is
 * one, names the packet; the pipeline answers it. Shared by the fastify route
 * and the fast path in front of it (ilp-fast-path.ts).
 */
export async function answerSyncPrepare(
  account: AccountConfig,
  requestIdHeader: string | string[] | undefined,
  body: Buffer,
  services: PacketServices,
): Promise<SyncAnswer> {
  let packetId: string | undefined
  if (requestIdHeader !== undefined) {
    packetId = normalizeRequestId(singleHeader(requestIdHeader) ?? '')
    if (packetId === undefined) return { status: 400, error: 'Request-Id must be a UUID' }
  }
  try {
    return { status: 200, packet: await handlePrepare(account, body, packetId, services) }
  } catch (err) {
    if (err instanceof NotAPrepareError) return { status: 400, error: err.message }
    throw err
  }
}

/** True for a body that is a readable ILP Fulfill or Reject. */
function isReply(body: Buffer): boolean {
  try {
    if (body[0] === Type.TYPE_ILP_FULFILL) deserializeIlpFulfill(body)
    else if (body[0] === Type.TYPE_ILP_REJECT) deserializeIlpReject(body)
    else return false
    return true
  } catch {
    return false
  }
}

/**
 * ILP-over-HTTP (RFC 35):
 * - `POST /accounts/:id/ilp`, sync: 200 with the Fulfill or Reject as the body.
 * - the same with `Prefer: respond-async` (or a `Callback-Url`), `Callback-Url`
 *   and `Request-Id`: 202 at once, the reply POSTed to the Callback-Url later;
 *   409 for a Request-Id the account used before.
 * - `POST /accounts/:id/ilp/callbacks`: replies of next hops to the farm's own
 *   async prepares: 200 handed to the owner, 400 unknown/answered/expired,
 *   503 owner not reachable right now (retry).
 */
export function ilpOverHttp(services: PacketServices, asyncInbound: AsyncInbound, asyncReplies: AsyncReplies) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addContentTypeParser(ILP_CONTENT_TYPES, { parseAs: 'buffer', bodyLimit: MAX_ILP_BODY_BYTES }, (_req, body, done) =>
      done(null, body),
    )

    app.post<{ Params: { id: string }; Body: Buffer }>(
      '/accounts/:id/ilp',
      { bodyLimit: MAX_ILP_BODY_BYTES },
      async (request, reply) => {
        const id = request.params.id
        const loaded = services.accounts.peek(id) ?? (await services.accounts.load(id))
        // Unknown account and wrong token look the same from outside.
        if (loaded === undefined || !authorized(request.headers.authorization, loaded.tokenDigest)) return unauthorized(reply)
        const account = loaded.account
        if (!Buffer.isBuffer(request.body)) return badRequest(reply, 'body must be an ILP Prepare')
        const headers = request.headers
        const requestIdHeader = headers['request-id']

        if (headers['callback-url'] !== undefined || prefersAsync(singleHeader(headers.prefer))) {
          const callbackUrl = parseCallbackUrl(singleHeader(headers['callback-url']) ?? '')
          if (callbackUrl === undefined) return badRequest(reply, 'async ILP-over-HTTP needs a Callback-Url with an http(s) URL')
          // The URL is stored with the Request-Id for the packet's lifetime: its size is the caller's to pick, so it is bounded.
          const maxLength = asyncInbound.maxCallbackUrlLength
          if (callbackUrl.length > maxLength) return badRequest(reply, `Callback-Url longer than ${maxLength} characters`)
          if (!callbackUrlAllowed(account, callbackUrl)) {
            return reply.code(403).send({ error: 'Callback-Url is not allowed for this account (see incoming.callbackUrls)' })
          }
          const requestId = singleHeader(requestIdHeader)
          if (requestId === undefined || !isRequestId(requestId)) return badRequest(reply, 'Request-Id must be a UUID')
          try {
            const acceptance = await asyncInbound.accept({ from: account, raw: request.body, requestId, callbackUrl })
            if (acceptance === 'replayed') return reply.code(409).send({ error: 'duplicate request id' })
            if (acceptance === 'too-many-request-ids') return reply.code(429).send({ error: 'too many request ids for this account; retry later' })
            if (acceptance === 'too-many-callbacks') return reply.code(429).send({ error: 'too many callbacks pending for this account; retry later' })
            return reply.code(202).send()
          } catch (err) {
            if (err instanceof NotAPrepareError) return badRequest(reply, err.message)
            throw err
          }
        }

        const answer = await answerSyncPrepare(account, requestIdHeader, request.body, services)
        if (answer.status === 200) return reply.code(200).header('content-type', ILP_CONTENT_TYPE).send(answer.packet)
        return badRequest(reply, answer.error)
      },
    )

    app.post<{ Params: { id: string }; Body: Buffer }>(
      '/accounts/:id/ilp/callbacks',
      { bodyLimit: MAX_ILP_BODY_BYTES },
      async (request, reply) => {
        const id = request.params.id
        const loaded = services.accounts.peek(id) ?? (await services.accounts.load(id))
        if (loaded === undefined || !authorized(request.headers.authorization, loaded.tokenDigest)) return unauthorized(reply)
        const account = loaded.account
        const requestId = normalizeRequestId(singleHeader(request.headers['request-id']) ?? '')
        if (requestId === undefined) return badRequest(reply, 'Request-Id must be a UUID')
        if (!Buffer.isBuffer(request.body) || !isReply(request.body)) return badRequest(reply, 'body must be an ILP Fulfill or Reject')
        let outcome
        try {
          outcome = await asyncReplies.accept(account.id, requestId, request.body)
        } catch (err) {
          services.log.error({ err }, 'could not take an async reply')
          return reply.code(503).send({ error: 'store unavailable, retry' })
        }
        switch (outcome) {
          case 'delivered':
            return reply.code(200).send()
          case 'unknown':
            return badRequest(reply, 'no request in flight with this Request-Id (unknown, already answered or expired)')
          case 'owner-unreachable':
            return reply.code(503).send({ error: 'the worker that owns this request is not reachable, retry' })
        }
      },
    )
  }
}
