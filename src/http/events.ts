import type { FastifyInstance, FastifyReply } from 'fastify'
import type { AccountRegistry } from '../accounts/registry.js'
import { FeedFullError, type PaymentFeed } from '../payments/feed.js'
import { bearerToken } from './auth.js'

/** A comment line this often keeps proxies and the connection's idle timeout from closing a quiet feed. */
const PING_MS = 10_000

/**
 * `GET /rpc/events`: the calling account's payment events as Server-Sent
 * Events, with the bearer token of /rpc. Each change of its history is one
 * `payment` event whose data is the entry as ilp_getPayments shows it (an
 * incoming payment once per credited packet, an outgoing one as it starts and
 * ends); `gap` says events may have been missed (Redis reconnected): read
 * ilp_getPayments again. The farm closes every feed when the worker stops.
 */
export function paymentEvents(deps: { feed: PaymentFeed; registry: AccountRegistry }) {
  return async (app: FastifyInstance): Promise<void> => {
    const open = new Set<() => void>()
    app.addHook('preClose', (done) => {
      for (const end of open) end()
      done()
    })
    app.get('/rpc/events', async (request, reply) => {
      const token = bearerToken(request.headers.authorization)
      const account = token === undefined ? undefined : (await deps.registry.byToken(token))?.account
      if (account === undefined) {
        return reply.code(401).send({ error: token === undefined ? 'Authorization: Bearer <the account token> is required' : 'the bearer token is not valid (no account has it, or it was rotated)' })
      }
      const raw = reply.raw
      const socket = request.raw.socket
      const write = (text: string) => {
        if (!raw.writableEnded) raw.write(text)
      }
      let stop: () => Promise<void>
      try {
        stop = await deps.feed.listen(account.id, {
          entry: (json) => write(`event: payment\ndata: ${json}\n\n`),
          gap: () => write('event: gap\ndata: {}\n\n'),
        })
      } catch (err) {
        if (err instanceof FeedFullError) return reply.code(429).send({ error: err.message })
        throw err
      }
      startStream(reply)
      write(': listening\n\n')
      const ping = setInterval(() => write(': ping\n\n'), PING_MS)
      const end = () => {
        clearInterval(ping)
        open.delete(end)
        void stop()
        // an event stream ends with its connection: nothing else is ever sent on it
        if (!raw.writableEnded) raw.end()
        socket.destroy()
      }
      open.add(end)
      // the response's close: the listener went away (or the feed ended)
      raw.on('close', end)
    })
  }
}

/** Takes the response over from fastify and sends the headers of an event stream. */
function startStream(reply: FastifyReply): void {
  reply.hijack()
  // connection: close, so that the end of the feed (the worker closing) ends its connection too
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no', connection: 'close' })
  reply.raw.flushHeaders()
}
