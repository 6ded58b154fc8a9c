import type { IncomingMessage, ServerResponse } from 'node:http'
import type { PacketServices } from '../packet/context.js'
import { authorized } from './auth.js'
import { answerSyncPrepare, ILP_CONTENT_TYPE, ILP_CONTENT_TYPES, MAX_ILP_BODY_BYTES } from './ilp-over-http.js'

/** `/accounts/<id>/ilp`, nothing after: the account id as the router's `:id` would take it. */
const SYNC_PATH = /^\/accounts\/([^/?#]+)\/ilp$/

/** Answers one request, or returns false to leave it to fastify. */
export type RequestShortcut = (req: IncomingMessage, res: ServerResponse) => boolean

/**
 * The packet endpoint's usual request, a sync ILP-over-HTTP prepare, taken
 * before fastify's router: one packet is a few dozen microseconds of work,
 * and fastify's routing, hooks and reply cost about as much again. It takes
 * only what the fastify route would answer the same way (the same
 * answerSyncPrepare): a POST to `/accounts/<id>/ilp` with an ILP content
 * type and a Content-Length within the limit (not 0), and no Callback-Url or Prefer
 * header (async). Anything else, and every error status the route gives
 * before reading the body (415, 413, a chunked body), is fastify's.
 *
 * `closing()`: the server is closing. New requests are then fastify's (503),
 * and an answer begun before ends its connection, as the server's onSend
 * hook does for fastify's replies.
 */
export function syncIlpShortcut(services: PacketServices, closing: () => boolean): RequestShortcut {
  return (req, res) => {
    // a closing server's router answers new requests 503, as fastify does
    if (req.method !== 'POST' || closing()) return false
    const match = SYNC_PATH.exec(req.url ?? '')
    if (match === null) return false
    const headers = req.headers
    if (headers['callback-url'] !== undefined || headers.prefer !== undefined) return false
    const length = Number(headers['content-length'])
    if (!(length > 0 && length <= MAX_ILP_BODY_BYTES) || !isIlpContentType(headers['content-type'])) return false
    let id: string
    try {
      id = decodeURIComponent(match[1]!)
    } catch {
      return false
    }
    readBody(req, length).then(
      (body) => answer(id, headers.authorization, headers['request-id'], body, res, services, closing),
      () => res.destroy(),
    )
    return true
  }
}

async function answer(
  id: string,
  authorization: string | undefined,
  requestId: string | string[] | undefined,
  body: Buffer,
  res: ServerResponse,
  services: PacketServices,
  closing: () => boolean,
): Promise<void> {
  try {
    const loaded = services.accounts.peek(id) ?? (await services.accounts.load(id))
    // Unknown account and wrong token look the same from outside.
    if (loaded === undefined || !authorized(authorization, loaded.tokenDigest)) return send(res, 401, { error: 'unauthorized' }, closing)
    const reply = await answerSyncPrepare(loaded.account, requestId, body, services)
    if (reply.status === 400) return send(res, 400, { error: reply.error }, closing)
    res.writeHead(200, closing() ? { 'content-type': ILP_CONTENT_TYPE, connection: 'close' } : { 'content-type': ILP_CONTENT_TYPE })
    res.end(reply.packet)
  } catch (err) {
    services.log.error({ err }, 'could not answer an ILP-over-HTTP request')
    if (!res.headersSent) send(res, 500, { error: 'internal error' }, closing)
    else res.destroy()
  }
}

function send(res: ServerResponse, status: number, body: { error: string }, closing: () => boolean): void {
  const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' }
  if (closing()) headers.connection = 'close'
  res.writeHead(status, headers).end(JSON.stringify(body))
}

function isIlpContentType(header: string | undefined): boolean {
  if (header === undefined) return false
  const semicolon = header.indexOf(';')
  const type = (semicolon < 0 ? header : header.slice(0, semicolon)).trim().toLowerCase()
  return ILP_CONTENT_TYPES.includes(type)
}

/** The body, `length` bytes as Content-Length said (node's parser holds the request to it). */
function readBody(req: IncomingMessage, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let received = 0
    req.on('data', (chunk: Buffer) => {
      chunks.push(chunk)
      received += chunk.length
    })
    let ended = false
    req.on('end', () => {
      ended = true
      if (received !== length) reject(new Error('body shorter than its Content-Length'))
      else resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received))
    })
    req.on('error', reject)
    // A connection cut off mid-body (the request timeout, the client) may end with neither. Every
    // request emits close, after its end too: the error, with its costly stack trace, only when it did not end.
    req.on('close', () => {
      if (!ended) reject(new Error('connection closed before the body ended'))
    })
  })
}
