import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { PacketServices } from '../packet/context.js'
import { adminApi } from './admin.js'
import { ilpOverHttp } from './ilp-over-http.js'

export interface ServerDeps {
  services: PacketServices
  redis: Redis
  adminToken: string | undefined
  logger: Logger
}

/** One worker's HTTP surface: ILP-over-HTTP, admin, health. */
export async function buildServer(deps: ServerDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    // per-request logs would cost more than the packet path itself
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1_000_000,
    keepAliveTimeout: 65_000,
  })
  await app.register(ilpOverHttp(deps.services))
  await app.register(adminApi({ adminToken: deps.adminToken, accounts: deps.services.accounts, ledger: deps.services.ledger }))
  app.get('/health', async (_request, reply) => {
    const redisUp = await deps.redis.ping().then(
      () => true,
      () => false,
    )
    return reply.code(redisUp ? 200 : 503).send({ status: redisUp ? 'ok' : 'degraded', redis: redisUp ? 'up' : 'down' })
  })
  return app
}
