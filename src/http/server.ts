import { readFileSync } from 'node:fs'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { AccountService } from '../accounts/service.js'
import type { AsyncInbound } from '../async/inbound.js'
import type { Onboarding } from '../onboarding/onboarding.js'
import type { PacketServices } from '../packet/context.js'
import { adminApi } from './admin.js'
import { dashboard } from './dashboard.js'
import { ilpOverHttp } from './ilp-over-http.js'
import { metricsEndpoint } from './metrics.js'
import { jsonRpc } from './rpc.js'

export interface ServerDeps {
  services: PacketServices
  /** Runtime account changes (admin API, tickets, sign-up). */
  accountService: AccountService
  /** Invitation tickets and open sign-up (issue 5). */
  onboarding: Onboarding
  /** Inbound async ILP-over-HTTP (202 now, the reply to the Callback-Url later). */
  asyncInbound: AsyncInbound
  /** PEM file paths; with them the worker serves HTTPS only. */
  tls?: { cert: string; key: string }
  redis: Redis
  adminToken: string | undefined
  logger: Logger
}

/** One worker's HTTP surface: ILP-over-HTTP, JSON-RPC, admin, health. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const https = deps.tls ? { cert: readFileSync(deps.tls.cert), key: readFileSync(deps.tls.key) } : null
  // fastify's types split HTTP and HTTPS instances; the routes below are the same for both
  const app = Fastify({
    https,
    loggerInstance: deps.logger as FastifyBaseLogger,
    // per-request logs would cost more than the packet path itself
    logController: new LogController({ disableRequestLogging: true }),
    // nothing logs per request on the packet path: no child logger per request either
    childLoggerFactory: (logger) => logger,
    bodyLimit: 1_000_000,
    keepAliveTimeout: 65_000,
  }) as unknown as FastifyInstance
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
  await app.register(ilpOverHttp(deps.services, deps.asyncInbound))
  await app.register(jsonRpc(deps.services, deps.onboarding))
  await app.register(adminApi({ adminToken: deps.adminToken, services: deps.services, accountService: deps.accountService, onboarding: deps.onboarding }))
  // metrics and dashboard (issue 6): only where the worker made its FarmMetrics
  const metrics = deps.services.metrics
  if (metrics) {
    await app.register(metricsEndpoint({ services: deps.services, metrics, adminToken: deps.adminToken }))
    await app.register(dashboard({ services: deps.services, metrics, adminToken: deps.adminToken, secureCookie: deps.tls !== undefined }))
  }
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
