import type { FastifyInstance } from 'fastify'
import { pino, type Logger } from 'pino'
import { CallbackSender } from '../async/callbacks.js'
import { AsyncInbound } from '../async/inbound.js'
import { AsyncReplies } from '../async/replies.js'
import { RequestIds } from '../store/request-ids.js'
import { FailedAuth } from '../http/failed-auth.js'
import { OperatorTokens } from '../http/scopes.js'
import { AccountRegistry } from '../accounts/registry.js'
import { AccountService } from '../accounts/service.js'
import { Settlements } from '../accounts/settlement.js'
import { Onboarding } from '../onboarding/onboarding.js'
import { hostIdOf } from '../config/host-id.js'
import type { FarmConfig } from '../config/schema.js'
import { OutgoingClient } from '../peers/outgoing.js'
import { buildServer } from '../http/server.js'
import { FarmMetrics } from '../metrics/farm-metrics.js'
import type { PacketServices } from '../packet/context.js'
import { Resolver } from '../packet/resolver.js'
import { Rates } from '../rates/rates.js'
import { HostedReceiver } from '../receiver/hosted-receiver.js'
import { PaymentHistory } from '../payments/history.js'
import { Payer } from '../payments/payer.js'
import { PaymentFeed } from '../payments/feed.js'
import { SpspClient } from '../payments/spsp-client.js'
import { handlePrepare } from '../packet/pipeline.js'
import { AddressMapper } from '../routing/address-mapper.js'
import { RouteAnnouncer } from '../routing/ccp.js'
import { CcpResponder } from '../routing/ccp-responder.js'
import { UserRpc } from '../rpc/user-rpc.js'
import { Ledger, newBootId } from '../store/ledger.js'
import { renameFarmKeys } from '../store/migrate.js'
import { Coordination } from '../store/coordination.js'
import { connectRedis, type RedisClient, type RedisTarget } from '../store/redis.js'
import { Coordinator } from './coordinator.js'
import { ensureHostIdFree } from './host-check.js'

export interface WorkerOptions {
  config: FarmConfig
  /** The farm's Redis: a URL, or a target (one Redis, or a cluster's seed nodes). */
  redisTarget: string | RedisTarget
  shard: number
  logger?: Logger
  /** This process's incarnation (owner of its packets' records); default: `<shard>-<random>`. */
  bootId?: string
  /** Address mapper timings (tests): outcome counts flushed and read back, liquidity re-read. */
  routing?: { statsIntervalMs?: number; liquidityIntervalMs?: number }
}

export interface Worker {
  readonly app: FastifyInstance
  readonly services: PacketServices
  readonly redis: RedisClient
  /** Heartbeat, leader lease, sweeper (crash safety); `coordinator.onRefund` is the sweeper's refund hook. */
  readonly coordinator: Coordinator
  /** Inbound async ILP-over-HTTP; `rejectSweptAsyncPacket` is the sweeper's refund hook for it. */
  readonly asyncInbound: AsyncInbound
  /** Outbound async ILP-over-HTTP: prepares sent to `outgoing.mode: async` next hops, waiting for their callbacks. */
  readonly asyncReplies: AsyncReplies
  /** Listens on the configured host and port (port 0: a free port); returns the base URL. */
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

/** On close, callbacks of async packets still being delivered get this long before they are dropped. */
const ASYNC_CALLBACK_CLOSE_GRACE_MS = 2_000

/** A worker: its Redis connection, the packet services, and the HTTP server on top. */
export async function createWorker(opts: WorkerOptions): Promise<Worker> {
  const { config, shard } = opts
  const log = opts.logger ?? createLogger(config, shard)
  const redis = await connectRedis(opts.redisTarget, { commandTimeoutMs: config.redis.commandTimeoutMs })
  const ledger = new Ledger(redis, config.redis.keyPrefix, {
    bootId: opts.bootId ?? newBootId(shard),
    ...(config.redis.durability === 'replica' ? { durability: { timeoutMs: config.redis.durabilityTimeoutMs } } : {}),
  })
  // workers of this host id live under another supervisor: refuse to start rather than fight over their heartbeats
  await ensureHostIdFree(new Coordination(ledger.redis, ledger.keys, hostIdOf(config)), log).catch((err: unknown) => {
    redis.disconnect()
    throw err
  })
  await renameFarmKeys(redis, ledger.keys, log)
  await ledger.load()
  // farm-wide metrics: times this connection's calls, adds the counts to Redis every second
  const metrics = FarmMetrics.start({ redis, keyPrefix: config.redis.keyPrefix, bootId: ledger.bootId, log })
  // the accounts: the config's written into Redis; pinned ones loaded, the rest cached as used; changes pushed over pub/sub
  const registry = await AccountRegistry.start({
    redis,
    redisTarget: opts.redisTarget,
    keys: ledger.keys,
    configAccounts: config.accounts,
    log,
    cacheSize: config.accountCache.size,
  })
  const outgoing = new OutgoingClient()
  registry.onChange((id) => outgoing.forget(id)) // a changed outgoing.url or token gets a new pool
  const resolver = new Resolver(ledger, log)
  // the users' own JSON-RPC URLs: read and invalidated with their accounts
  const userRpc = new UserRpc(registry)
  // the routing table (shared through Redis, changes pushed over pub/sub), policy and outcome counters
  const routes = await AddressMapper.start({ redis, redisTarget: opts.redisTarget, config, accounts: registry, ledger, log, ...opts.routing })
  const accountService = new AccountService(registry, routes, config.ilpAddress)
  const sendsAsync = config.accounts.some((a) => a.outgoing?.mode === 'async')
  const asyncReplies = await AsyncReplies.start({
    redis,
    redisTarget: opts.redisTarget,
    keys: ledger.keys,
    ownerId: ledger.bootId,
    outgoing,
    log,
    publicUrl: config.http.publicUrl,
    sendsAsync,
  })
  // route announcements (CCP): every worker answers peer.route.*, the leader announces (a leader duty, below)
  const ccp = new CcpResponder({ config, redis, log })
  const announcer = new RouteAnnouncer({ config, accounts: registry, mapper: routes, redis, outgoing, bootId: ledger.bootId, log })
  // the accounts' payment histories: the hosted receiver adds incoming payments, ilp_pay outgoing ones;
  // each change is published on the account's channel, which GET /rpc/events follows while someone listens
  const history = new PaymentHistory(redis, ledger.keys)
  const feed = await PaymentFeed.open(opts.redisTarget, ledger.keys, { perAccount: 5, total: 1_000 })
  // the farm's own STREAM receiver for its children: stateless, its secret shared farm-wide
  const receiver = config.receiver.enabled ? await HostedReceiver.open(redis, ledger.keys, config, history, log) : undefined
  const { webhookUrl, webhookToken } = config.settlement
  const settlements = new Settlements(redis, ledger.keys, log, webhookUrl ? { url: webhookUrl, ...(webhookToken ? { token: webhookToken } : {}) } : undefined)
  const services: PacketServices = {
    ilpAddress: config.ilpAddress,
    shard,
    minMessageWindowMs: config.minMessageWindowMs,
    maxHoldTimeMs: config.maxHoldTimeMs,
    limits: config.limits,
    ...(config.http.publicUrl ? { publicUrl: config.http.publicUrl } : {}),
    accounts: registry,
    registry,
    settlements,
    routes,
    ccp,
    rates: new Rates(config),
    ledger,
    // the packet core's next-hop transports; the forward step picks one per next hop
    transports: { sync: outgoing, async: asyncReplies, userRpc, ...(receiver ? { hosted: receiver } : {}) },
    resolver,
    requestIds: new RequestIds(redis, ledger.keys, { maxHoldTimeMs: config.maxHoldTimeMs, maxPerAccount: config.async.maxRequestIdsPerAccount }),
    userRpc,
    metrics,
    log,
  }
  // ilp_pay: the STREAM sender runs here, its packets enter the packet path as the account's own
  const spspClient = new SpspClient({ allowPrivate: config.payments.allowPrivateSpsp, allowHttp: config.payments.allowHttpSpsp })
  const payer = new Payer({
    send: (account, prepare) => handlePrepare(account, prepare, undefined, services),
    history,
    spsp: spspClient,
    prices: Object.fromEntries(Object.entries(config.rates.prices).map(([code, price]) => [code, Number(price)])),
    slippage: config.payments.slippage,
    log,
  })
  const asyncInbound = new AsyncInbound(services, new CallbackSender(log), {
    maxCallbackUrlLength: config.async.maxCallbackUrlLength,
    maxPendingPerAccount: config.async.maxPendingCallbacksPerAccount,
    callbackMarginMs: config.async.callbackMarginMs,
  })
  // crash safety: heartbeat, leader lease and sweeper, own orphans; started before the server listens
  const coordinator = new Coordinator({ ledger, shard, log, ...config.farm, hostId: hostIdOf(config) })
  // a swept async inbound packet gets its reject POSTed to the caller's Callback-Url
  coordinator.onRefund = (entry) =>
    void asyncInbound.rejectSweptAsyncPacket(entry).catch((err: unknown) => log.warn({ err }, 'could not send the reject of a swept async packet'))
  coordinator.addLeaderDuty(announcer)
  coordinator.addLeaderDuty(settlements.leaderDuty()) // settlement webhooks, in order, from one worker
  await coordinator.start()
  const onboarding = new Onboarding(redis, ledger.keys, accountService, config)
  const app = await buildServer({
    services,
    accountService,
    onboarding,
    asyncInbound,
    asyncReplies,
    redis,
    http: config.http,
    rpc: config.rpc,
    tls: config.http.tls,
    ...(receiver ? { receiver } : {}),
    ...(config.payments.enabled ? { payments: { payer, history } } : {}),
    feed,
    tokens: new OperatorTokens(config.admin.token, config.admin.tokens),
    failedAuth: new FailedAuth(redis, ledger.keys, config.admin.failedAuth),
    // behind a TLS proxy (an https publicUrl) the browser sees https too
    secureCookie: config.http.tls !== undefined || config.http.publicUrl?.startsWith('https:') === true,
    logger: log,
  })

  return {
    app,
    services,
    redis,
    coordinator,
    asyncInbound,
    asyncReplies,
    async listen() {
      await app.listen({ host: config.http.host, port: config.http.port })
      const address = app.server.address()
      const port = typeof address === 'object' && address ? address.port : config.http.port
      const url = `${config.http.tls ? 'https' : 'http'}://${config.http.host.includes(':') ? `[${config.http.host}]` : config.http.host}:${port}`
      asyncReplies.setDefaultPublicUrl(url)
      return url
    },
    async close() {
      await app.close()
      await asyncInbound.close(ASYNC_CALLBACK_CLOSE_GRACE_MS)
      await asyncReplies.close()
      await routes.close() // flushes the last outcome counts
      await resolver.flush()
      await ledger.flushCredits() // a cluster's credits still landing after their fulfills went upstream
      const unsettled = resolver.close()
      if (unsettled > 0) log.warn({ unsettled }, 'closing with unsettled packets; their records stay for the sweeper')
      const unrelayed = await settlements.close()
      if (unrelayed > 0) log.warn({ unrelayed }, 'closing with settlement requests not relayed; their accounts keep them for their next check')
      await coordinator.stop() // crash safety: lease released, heartbeat deleted
      await outgoing.close()
      await userRpc.close()
      await spspClient.close()
      await feed.close()
      await registry.close()
      await metrics.close() // the last counts into Redis
      redis.disconnect()
    },
  }
}
