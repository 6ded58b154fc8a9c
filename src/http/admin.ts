import fastifySwagger from '@fastify/swagger'
import type {
  FastifyError,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
  RouteGenericInterface,
  RouteHandlerMethod,
} from 'fastify'
import { Adjustments, type AdjustmentKind } from '../accounts/adjustments.js'
import { baseUrlOf, receivingAddress } from '../receiver/payment-pointer.js'
import { SettlementRelay } from '../accounts/settlement-relay.js'
import { type AccountService, rotateToken } from '../accounts/service.js'
import type { Onboarding } from '../onboarding/onboarding.js'
import { type AccountDirectory, canReceive, type LoadedAccount } from '../accounts/registry.js'
import { quote, QuoteError } from '../rates/quote.js'
import type { PacketServices } from '../packet/context.js'
import { schemaErrorMessage, schemaValidator } from '../util/json-schema.js'
import { Coordination } from '../store/coordination.js'
import { allowedCallbackPrefixes } from '../async/callback-policy.js'
import { ADMIN_SCHEMAS, type AdminRoute } from './admin-schemas.js'
import type { Scope } from './scopes.js'
import { DurabilityError } from '../store/durability.js'

export interface AdminDeps {
  services: PacketServices
  /** Runtime account changes: create, update, delete. */
  accountService: AccountService
  /** Invitation tickets. */
  onboarding: Onboarding
}

/** The body size of POST /admin/accounts/import: MAX_IMPORT_BATCH accounts of about 1 KiB. */
const IMPORT_BODY_BYTES = 16 * 1024 * 1024

/**
 * The scope each /admin route needs, by `METHOD url` as registered: reads
 * `read`, balance changes `money`, account changes `accounts`, static routes
 * `routes`; whatever changes the farm in another way `admin`. A route missing
 * here makes the server fail to start (the onRoute hook below), so no route
 * can be added without naming its scope.
 */
export const ADMIN_ROUTE_SCOPES: Readonly<Record<string, Scope>> = {
  'GET /admin/accounts': 'read',
  'GET /admin/accounts/:id': 'read',
  'GET /admin/settlements': 'read',
  'GET /admin/hotset': 'read',
  'GET /admin/inflight': 'read',
  'GET /admin/workers': 'read',
  'GET /admin/routes': 'read',
  // a quote changes nothing: it reads rates, routes and the sender's limits
  'POST /admin/quote': 'read',
  'POST /admin/accounts': 'accounts',
  'POST /admin/accounts/import': 'accounts',
  'PUT /admin/accounts/:id': 'accounts',
  'DELETE /admin/accounts/:id': 'accounts',
  'POST /admin/accounts/:id/token': 'accounts',
  // a ticket, once redeemed, is a new account
  'POST /admin/tickets': 'accounts',
  'POST /admin/accounts/:id/deposits': 'money',
  'POST /admin/accounts/:id/withdrawals': 'money',
  'PUT /admin/routes/:prefix': 'routes',
  'DELETE /admin/routes/:prefix': 'routes',
  'GET /admin/openapi.json': 'read',
}

/** The scope a route needs; HEAD (added by fastify beside each GET) needs what its GET needs. Throws for a route not in the table. */
export function adminRouteScope(method: string, url: string): Scope {
  const key = `${method === 'HEAD' ? 'GET' : method} ${url}`
  const scope = ADMIN_ROUTE_SCOPES[key]
  if (scope === undefined) throw new Error(`admin API: ${key} names no scope in ADMIN_ROUTE_SCOPES`)
  return scope
}

/**
 * /admin/...: the operator's view, registered with `{ prefix: '/admin' }` inside operatorAuth, which
 * refuses a request whose token lacks the route's scope (set here from ADMIN_ROUTE_SCOPES) before its body
 * is read; without operator tokens configured, every request is refused. Each route validates and
 * serializes with its schema (admin-schemas.ts), and GET /admin/openapi.json publishes them.
 */
export function adminApi(deps: AdminDeps) {
  const { services, accountService } = deps
  const { ledger, registry } = services
  const relay = services.settlements?.relay ?? new SettlementRelay(ledger.redis, ledger.keys, services.log)
  const adjustments = new Adjustments(ledger.redis, ledger.keys, relay, ledger.durabilityTimeoutMs)

  // a child's payment pointer, where the farm receives for it; null for others, or with no hosted receiver
  const receiving = (accountId: string, relation: string, request: FastifyRequest) =>
    relation === 'child' && services.transports.hosted !== undefined ? receivingAddress(baseUrlOf(services.publicUrl, request), accountId) : { paymentPointer: null, spspUrl: null }
  const describe = async ({ account, origin, rpcUrl }: LoadedAccount, request: FastifyRequest) => {
    const b = await ledger.balance(account.id)
    return {
      id: account.id,
      relation: account.relation,
      assetCode: account.assetCode,
      assetScale: account.assetScale,
      balance: b.balance,
      cold: b.cold,
      hot: b.hot,
      creditsInFlight: b.creditsInFlight,
      minBalance: account.minBalance,
      maxBalance: account.maxBalance ?? null,
      maxPacketAmount: account.maxPacketAmount ?? null,
      settleThreshold: account.settleThreshold ?? null,
      settleTo: account.settleThreshold === undefined ? null : (account.settleTo ?? '0'),
      origin,
      parallelism: account.parallelism ?? null,
      metrics: account.metrics ?? null,
      // Tokens are never shown; whether there is one is, so a client can send the account back whole (PUT).
      incoming: account.incoming ? { callbackUrls: account.incoming.callbackUrls ?? null } : null,
      // What the farm will call for it (RPC URL, async Callback-Url): incoming.callbackUrls or their default.
      allowedUrlPrefixes: allowedCallbackPrefixes(account),
      outgoing: account.outgoing ? { url: account.outgoing.url, mode: account.outgoing.mode, hasToken: account.outgoing.token !== undefined || account.outgoing.tokenEnv !== undefined || account.outgoing.tokenFile !== undefined, ...(account.outgoing.tokenEnv ? { tokenEnv: account.outgoing.tokenEnv } : {}), ...(account.outgoing.tokenFile ? { tokenFile: account.outgoing.tokenFile } : {}) } : null,
      rpcUrl: rpcUrl ?? null,
      ...receiving(account.id, account.relation, request),
      routes: account.routes,
      sendRoutes: account.sendRoutes,
      receiveRoutes: account.receiveRoutes,
    }
  }

  const adjust =
    (kind: AdjustmentKind) =>
    async (request: FastifyRequest<{ Params: { id: string }; Body: { amount: string }; Headers: { 'idempotency-key': string } }>, reply: FastifyReply) => {
      const account = (await registry.readNow(request.params.id))?.account
      if (!account) return reply.code(404).send({ error: `no account ${request.params.id}` })
      const key = request.headers['idempotency-key']
      const { amount } = request.body
      let result
      try {
        result = await adjustments.adjust(account, kind, amount, key)
      } catch (err) {
        if (!(err instanceof DurabilityError)) throw err
        return reply.code(503).send({ error: 'applied, but no replica confirmed it in time: retry with the same Idempotency-Key to learn its outcome' })
      }
      switch (result.status) {
        case 'conflict':
          return reply.code(422).send({ error: 'Idempotency-Key was already used for a different request' })
        case 'insufficient-balance':
          return reply.code(422).send({ error: `the withdrawal would take the balance (${result.balance}) below minBalance (${account.minBalance})` })
        default:
          return {
            id: account.id,
            kind,
            amount,
            balance: result.balance,
            applied: result.status === 'applied',
            ...(result.status === 'applied' && result.settlementId ? { settlementId: result.settlementId } : {}),
          }
      }
    }

  return async function plugin(app: FastifyInstance): Promise<void> {
    // bodies are taken as sent (a number is not an amount string); query and path parameters are text,
    // read as the type their schema names
    const bodies = schemaValidator({ coerce: false })
    const text = schemaValidator({ coerce: true })
    app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodies : text).compile(schema))
    app.setSchemaErrorFormatter((errors, part) => new Error(schemaErrorMessage(errors, part === 'querystring' ? 'query' : part)))
    app.setErrorHandler(adminError)
    // the scope of each route, from the one table; a route missing there stops the server from starting
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) route.config = { ...route.config, scope: adminRouteScope(method, route.url) }
    })
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.1.0',
        info: {
          title: 'ilp-farm admin API',
          version: OPENAPI_VERSION,
          description: 'The operator\'s REST API (docs/ADMIN-API.md). Every route takes an operator token holding the scope its security names.',
        },
        components: { securitySchemes: { operatorToken: { type: 'http', scheme: 'bearer', description: 'admin.token (every scope) or one of admin.tokens' } } },
      },
      // each operation names the scope its token needs
      transform: ({ schema, url, route }) => ({ schema: { ...schema, security: [{ operatorToken: [route.config?.scope ?? 'admin'] }] }, url }),
    })

    /** A route of the table: its method and URL (under /admin), schema and scope come from its key. */
    const route = <T extends RouteGenericInterface>(
      key: AdminRoute,
      handler: RouteHandlerMethod<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, T>,
      options: { bodyLimit?: number } = {},
    ) => {
      const [method, url] = key.split(' ') as [string, string]
      app.route<T>({ method, url, schema: ADMIN_SCHEMAS[key], handler, ...options })
    }

    // One page of the accounts in id order: ?cursor=<the last id of the previous page>&limit=<1..1000>.
    route<{ Querystring: { cursor?: string; limit: number } }>('GET /accounts', async (request) => {
      const page = await registry.list(request.query.cursor, request.query.limit)
      return { accounts: await Promise.all(page.accounts.map((a) => describe(a, request))), nextCursor: page.next ?? null }
    })

    route<{ Params: { id: string } }>('GET /accounts/:id', async (request, reply) => {
      const loaded = await registry.readNow(request.params.id)
      if (!loaded) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return describe(loaded, request)
    })

    // Runtime accounts: validated like the config file (its checks name each field); every worker has the
    // change within a round trip or two. An id of a deleted account is refused (409) unless
    // ?reuseDeletedId=true: then the answer says what the new holder takes over.
    route<{ Body: Record<string, unknown>; Querystring: { reuseDeletedId: boolean } }>('POST /accounts', async (request, reply) => {
      const { reuseDeletedId } = request.query
      const result = await accountService.create(request.body, 'admin', { reuseDeletedId })
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      const loaded = await registry.readNow(result.account.id)
      const view = loaded ? await describe(loaded, request) : { id: result.account.id }
      const inherited = reuseDeletedId && result.reusedDeletedId ? { inherited: { balance: 'balance' in view ? view.balance : '0', note: 'the id belonged to a deleted account: its recorded balance is now this account\'s' } } : {}
      return reply.code(201).send({ account: view, ...inherited, ...(result.token ? { token: result.token } : {}) })
    })

    // Many accounts at once (ilp-farm accounts import): each validated exactly like POST /admin/accounts.
    route<{ Body: unknown[]; Querystring: { update: boolean } }>(
      'POST /accounts/import',
      async (request) => ({ results: await accountService.importMany(request.body, { update: request.query.update }) }),
      { bodyLimit: IMPORT_BODY_BYTES },
    )

    route<{ Params: { id: string }; Body: Record<string, unknown> }>('PUT /accounts/:id', async (request, reply) => {
      const result = await accountService.update(request.params.id, request.body)
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      const loaded = await registry.readNow(result.account.id)
      return loaded ? describe(loaded, request) : reply.code(404).send({ error: `no account ${request.params.id}` })
    })

    // Revokes the account's token by replacing it: the new one is answered once, the old one stops on every worker within a round trip.
    route<{ Params: { id: string } }>('POST /accounts/:id/token', async (request, reply) => {
      const rotated = await rotateToken(registry, request.params.id)
      if (!rotated.ok) return reply.code(rotated.status).send({ error: rotated.error })
      return { id: request.params.id, token: rotated.token }
    })

    // The account stops taking and receiving packets at once (packets in flight settle); its balance stays in Redis.
    route<{ Params: { id: string } }>('DELETE /accounts/:id', async (request, reply) => {
      const removed = await accountService.remove(request.params.id)
      if (!removed) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return { id: removed.id, balance: (await ledger.balance(removed.id)).balance }
    })

    route('POST /accounts/:id/deposits', adjust('deposit'))
    route('POST /accounts/:id/withdrawals', adjust('withdrawal'))

    // An invitation ticket: one-time, expiring; redeemed over JSON-RPC (ilp_redeemTicket) it creates this account.
    // The account and the callbackUrls are checked as the config's are (their messages name each field).
    route<{ Body: { account: Record<string, unknown>; id?: string; callbackUrls?: string[]; expiresInMs: number } }>('POST /tickets', async (request, reply) => {
      const { account, id, callbackUrls, expiresInMs } = request.body
      const issued = await deps.onboarding.issueTicket({
        account,
        lifetimeMs: expiresInMs,
        ...(id !== undefined ? { id } : {}),
        ...(callbackUrls !== undefined ? { callbackUrls } : {}),
      })
      if ('problems' in issued) return reply.code(400).send({ error: `invalid account: ${issued.problems.join('; ')}`, issues: issued.problems })
      return reply.code(201).send(issued)
    })

    route('GET /settlements', async () => (services.settlements ? services.settlements.recent() : []))

    // Packets in flight (their incoming records, through the owners' indexes): owner, expiry, amounts.
    route('GET /hotset', async () => ledger.hotSet())
    route('GET /inflight', async () => ledger.hotSet())

    // The live workers (heartbeat not expired) of every host, with their heartbeat age, the hosts, and the leader.
    const coordination = new Coordination(ledger.redis, ledger.keys)
    route('GET /workers', async () => coordination.status())

    // The routing table: every prefix, its candidates with liquidity, farm-wide successes and failures, health.
    // children are in no table: `<ilpAddress>.<id>` routes to child <id> by its address
    route('GET /routes', async () => ({ policy: services.routes.policy, ilpAddress: services.ilpAddress, routes: await services.routes.describe() }))

    // Adds a static candidate for a prefix at runtime, validated like the config; every worker has it within a second.
    route<{ Params: { prefix: string }; Body: { account: string } }>('PUT /routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const accountId = request.body.account
      const problem = await unreachable(accountId, services.accounts)
      if (problem !== undefined) return reply.code(400).send({ error: problem })
      await services.routes.addStatic(prefix, accountId)
      return { prefix, candidates: services.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // Removes a static candidate (?account=<id>), or every static candidate of the prefix; 404 if there was none.
    route<{ Params: { prefix: string }; Querystring: { account?: string } }>('DELETE /routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const accountId = request.query.account
      const removed = await services.routes.removeStatic(prefix, accountId)
      if (!removed) return reply.code(404).send({ error: `no static route ${prefix}${accountId === undefined ? '' : ` to ${accountId}`}` })
      return { prefix, candidates: services.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // A quote: the other amount and the next hop for a sender, a destination and a source or destination amount.
    // 400 bad input; 422 when a packet would be refused (code F02 no route or no rate, R01 rounds to zero, F08 beyond UInt64).
    route<{ Body: { from: string; destination: string; sourceAmount?: string; destinationAmount?: string } }>('POST /quote', async (request, reply) => {
      const { from: fromId, destination, sourceAmount, destinationAmount } = request.body
      const from = (await services.accounts.load(fromId))?.account
      if (!from) return reply.code(400).send({ error: `from: unknown account "${fromId}"` })
      try {
        // the schema lets exactly one of the two amounts through
        return await quote(sourceAmount !== undefined ? { from, destination, sourceAmount } : { from, destination, destinationAmount: destinationAmount! }, services)
      } catch (err) {
        if (err instanceof QuoteError) return reply.code(422).send({ error: err.message, code: err.code })
        throw err
      }
    })

    // This API as OpenAPI 3.1, generated from the schemas above: it cannot drift from the routes.
    route('GET /openapi.json', async () => app.swagger())
  }
}

/** The version the OpenAPI document gives the admin API. */
const OPENAPI_VERSION = '0.1.0'

/**
 * Errors as docs/ADMIN-API.md has them, `{ "error": "<what is wrong>" }`: a request that fails its schema
 * is 400 naming the field; fastify's own refusals (a body that is not JSON, too large) keep their status.
 */
function adminError(error: FastifyError, _request: FastifyRequest, reply: FastifyReply) {
  if (error.validation) return reply.code(400).send({ error: error.message })
  const status = error.statusCode ?? 500
  if (status >= 400 && status < 500) return reply.code(status).send({ error: error.message })
  throw error
}

/**
 * The config's checks for a static route's next hop (src/config/load.ts) that need the farm's state, so
 * no schema can make them: the account exists and can be reached. Undefined when it can.
 */
async function unreachable(accountId: string, accounts: AccountDirectory): Promise<string | undefined> {
  const loaded = await accounts.load(accountId)
  if (!loaded) return `account: route to a missing account "${accountId}"`
  // A next hop is reached through its outgoing URL or its RPC URL, as in the packet path. One that may
  // register an RPC URL (a user between two `receive` runs) is a next hop too: packets get T01 until it does.
  if (canReceive(loaded) || allowedCallbackPrefixes(loaded.account).length > 0) return undefined
  return `account: account "${accountId}" cannot be reached: no outgoing.url, no RPC URL, and no incoming.callbackUrls to register one under`
}
