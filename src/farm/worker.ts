import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { pino, type Logger } from 'pino'
import type { AccountConfig, FarmConfig } from '../config/schema.js'
import { OutgoingClient } from '../http/outgoing.js'
import { buildServer } from '../http/server.js'
import type { PacketServices } from '../packet/context.js'
import { Resolver } from '../packet/resolver.js'
import { staticRoutes } from '../routing/routing-table.js'
import { Ledger } from '../store/ledger.js'
import { connectRedis } from '../store/redis.js'

export interface WorkerOptions {
  config: FarmConfig
  redisUrl: string
  shard: number
  logger?: Logger
}

export interface Worker {
  readonly app: FastifyInstance
  readonly services: PacketServices
  readonly redis: Redis
  /** Listens on the configured host and port (port 0: any free port); returns the base URL. */
  listen(): Promise<string>
  close(): Promise<void>
}

export function createLogger(config: FarmConfig, shard?: number): Logger {
  return pino({
    level: config.log.level,
    base: shard === undefined ? { pid: process.pid } : { pid: process.pid, shard },
    redact: ['req.headers.authorization', '*.token', 'token'],
  })
}

/** A worker: its Redis connection, the packet services, and the HTTP server on top. */
export async function createWorker(opts: WorkerOptions): Promise<Worker> {
  const { config, shard } = opts
  const log = opts.logger ?? createLogger(config, shard)
  const redis = await connectRedis(opts.redisUrl, { commandTimeoutMs: config.redis.commandTimeoutMs })
  const ledger = new Ledger(redis, config.redis.keyPrefix)
  await ledger.load()
  const accounts = new Map<string, AccountConfig>(config.accounts.map((a) => [a.id, a]))
  const outgoing = new OutgoingClient()
  const resolver = new Resolver(ledger, log)
  const services: PacketServices = {
    ilpAddress: config.ilpAddress,
    shard,
    minMessageWindowMs: config.minMessageWindowMs,
    maxHoldTimeMs: config.maxHoldTimeMs,
    accounts,
    routes: staticRoutes(config),
    ledger,
    outgoing,
    resolver,
    log,
  }
  const app = await buildServer({ services, redis, tls: config.http.tls, adminToken: config.admin.token, logger: log })

  return {
    app,
    services,
    redis,
    async listen() {
      await app.listen({ host: config.http.host, port: config.http.port })
      const address = app.server.address()
      const port = typeof address === 'object' && address ? address.port : config.http.port
      return `${config.http.tls ? 'https' : 'http'}://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`
    },
    async close() {
      await app.close()
      const unsettled = resolver.close()
      if (unsettled > 0) log.warn({ unsettled }, 'closing with unsettled packets; the hotSet keeps them')
      await outgoing.close()
      redis.disconnect()
    },
  }
}
