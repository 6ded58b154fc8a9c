import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Logger } from 'pino'
import type { AccountService } from '../accounts/service.js'
import type { FarmConfig } from '../config/schema.js'
import type { AsyncInbound } from '../async/inbound.js'
import type { AsyncReplies } from '../async/replies.js'
import type { Onboarding } from '../onboarding/onboarding.js'
import type { PacketServices } from '../packet/context.js'
import { adminApi } from './admin.js'
import type { FailedAuth } from './failed-auth.js'
import type { OperatorTokens } from './scopes.js'
import { dashboard } from './dashboard.js'
import { ilpOverHttp } from './ilp-over-http.js'
import { syncIlpShortcut } from './ilp-fast-path.js'
import { metricsEndpoint } from './metrics.js'
import { OperatorAuth, operatorAuth } from './operator-auth.js'
import { jsonRpc } from './rpc.js'
import { spspEndpoint } from './spsp.js'
import { paymentEvents } from './events.js'
import type { PaymentFeed } from '../payments/feed.js'
import type { CallerContext } from '../rpc/types.js'
import type { HostedReceiver } from '../receiver/hosted-receiver.js'
import type { RedisClient } from '../store/redis.js'

export interface ServerDeps {
  services: PacketServices
  /** Runtime account changes (admin API, tickets, sign-up). */
  accountService: AccountService
  /** Invitation tickets and open sign-up. */
  onboarding: Onboarding
  /** Inbound async ILP-over-HTTP (202 now, the reply to the Callback-Url later). */
  asyncInbound: AsyncInbound
  /** Outbound async ILP-over-HTTP: takes the callbacks of next hops with `outgoing.mode: async`. */
  asyncReplies: AsyncReplies
  /** Timeouts and the connection cap of the listening socket (http.*). */
  http: Pick<FarmConfig['http'], 'requestTimeoutMs' | 'headersTimeoutMs' | 'connectionTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>
  /** What one POST /rpc may ask for (rpc.*). */
  rpc: FarmConfig['rpc']
  /** ilp_pay and the payment histories (JSON-RPC); absent (payments.enabled false): those methods are off. */
  payments?: CallerContext['payments']
  /** The accounts' payment events (GET /rpc/events); absent: no feed. */
  feed?: PaymentFeed
  /** The farm's own STREAM receiver: the accounts' SPSP endpoints; absent (receiver.enabled false): none. */
  receiver?: HostedReceiver
  /** PEM file paths; with them the worker serves HTTPS only. */
  tls?: { cert: string; key: string }
  redis: RedisClient
  /** admin.token and admin.tokens with their scopes (admin API, /metrics, dashboard). */
  tokens: OperatorTokens
  /** Failed admin-token checks per IP, farm-wide (dashboard login, /admin, /metrics). */
  failedAuth?: FailedAuth
  /** The session cookie gets Secure and the __Host- name; default: when the worker serves TLS itself. */
  secureCookie?: boolean
  logger: Logger
}

/** One worker's HTTP surface: ILP-over-HTTP, JSON-RPC, admin, health. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const limits = deps.http
  // node checks the request and headers timeouts on a timer (30 s by default): often enough that a slow
  // request is cut off within about a second of its limit
  const serverOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: Math.min(1_000, limits.headersTimeoutMs),
  }
  const https = deps.tls ? { cert: readFileSync(deps.tls.cert), key: readFileSync(deps.tls.key), ...serverOptions } : null
  // fastify's types split HTTP and HTTPS instances; the routes below are the same for both
  const app = Fastify({
    // https carries the same server options; `http` is what fastify hands to http.createServer
    ...(https ? { https } : { http: serverOptions }),
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.connectionTimeoutMs,
    loggerInstance: deps.logger as FastifyBaseLogger,
    // per-request logs would cost more than the packet path itself
    logController: new LogController({ disableRequestLogging: true }),
    // nothing logs per request on the packet path: no child logger per request either
    childLoggerFactory: (logger) => logger,
    bodyLimit: 1_000_000,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
  }) as unknown as FastifyInstance
  // one connection more than the cap is closed by node as soon as it is accepted
  app.server.maxConnections = limits.maxConnections
  // close() waits for every connection: a response sent once it has begun (a packet that was in flight)
  // must not leave its keep-alive connection open until keepAliveTimeout
  let closing = false
  app.addHook('preClose', (done) => {
    closing = true
    done()
  })
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  await app.register(ilpOverHttp(deps.services, deps.asyncInbound, deps.asyncReplies))
  // Sync prepares are answered ahead of fastify's router, by the same code as its route. Node calls the
  // server's 'request' listeners, fastify's among them: it stays the listener for everything else.
  const shortcut = syncIlpShortcut(deps.services, () => closing)
  const [fastifyListener] = app.server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>
  if (fastifyListener === undefined) throw new Error('fastify registered no request listener')
  app.server.removeListener('request', fastifyListener)
  app.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!shortcut(req, res)) fastifyListener(req, res)
  })
  await app.register(jsonRpc(deps.services, deps.rpc, deps.onboarding, deps.payments))
  if (deps.receiver) await app.register(spspEndpoint({ receiver: deps.receiver, accounts: deps.services.accounts }))
  if (deps.feed) await app.register(paymentEvents({ feed: deps.feed, registry: deps.services.registry }))
  // the operator's routes, in the one plugin that checks operator tokens
  const auth = new OperatorAuth(deps.tokens, deps.failedAuth)
  await app.register(
    operatorAuth(auth, async (operator) => {
      await operator.register(adminApi({ services: deps.services, accountService: deps.accountService, onboarding: deps.onboarding }), { prefix: '/admin' })
      // metrics and dashboard: only where the worker made its FarmMetrics
      const metrics = deps.services.metrics
      if (metrics) {
        await operator.register(metricsEndpoint({ services: deps.services, metrics }))
        const secureCookie = deps.secureCookie ?? deps.tls !== undefined
        await operator.register(dashboard({ services: deps.services, metrics, auth, secureCookie }))
      }
    }),
  )
  app.get('/health', async (_request, reply) => {
    const redisUp = await deps.redis.ping().then(
      () => true,
      () => false,
    )
    // which worker answered (several share the port): for operators and for the cluster tests
    reply.header('x-ilp-farm-shard', String(deps.services.shard))
    return reply.code(redisUp ? 200 : 503).send({ status: redisUp ? 'ok' : 'degraded', redis: redisUp ? 'up' : 'down' })
  })
  return app
}
