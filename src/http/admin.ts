import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Adjustments, type AdjustmentKind, MAX_IDEMPOTENCY_KEY_LENGTH } from '../accounts/adjustments.js'
import { SettlementRelay } from '../accounts/settlement-relay.js'
import { type AccountService, rotateToken } from '../accounts/service.js'
import { DEFAULT_TICKET_LIFETIME_MS, MAX_TICKET_LIFETIME_MS, type Onboarding } from '../onboarding/onboarding.js'
import { type AccountDirectory, canReceive, type LoadedAccount } from '../accounts/registry.js'
import { quote, QuoteError, type QuoteRequest } from '../rates/quote.js'
import type { PacketServices } from '../packet/context.js'
import { isValidAddressSegment, isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import { isUInt64String } from '../util/amount.js'
import { Coordination } from '../store/coordination.js'
import { allowedCallbackPrefixes } from '../async/callback-policy.js'
import { type FailedAuth, requireScope } from './failed-auth.js'
import type { OperatorTokens, Scope } from './scopes.js'
import { DurabilityError } from '../store/durability.js'

export interface AdminDeps {
  /** admin.token and admin.tokens: who may call which route (ADMIN_ROUTE_SCOPES). */
  tokens: OperatorTokens
  services: PacketServices
  /** Runtime account changes: create, update, delete. */
  accountService: AccountService
  /** Invitation tickets. */
  onboarding: Onboarding
  /** Failed admin-token checks per IP, farm-wide. */
  failedAuth?: FailedAuth
}

/** Accounts per page of GET /admin/accounts: by default, and at most. */
const DEFAULT_PAGE = 100
const MAX_PAGE = 1_000
/** Accounts per POST /admin/accounts/import, and the body size that allows (about 1 KiB an account). */
export const MAX_IMPORT_BATCH = 10_000
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
}

/** The scope a route needs; HEAD (added by fastify beside each GET) needs what its GET needs. Throws for a route not in the table. */
export function adminRouteScope(method: string, url: string): Scope {
  const key = `${method === 'HEAD' ? 'GET' : method} ${url}`
  const scope = ADMIN_ROUTE_SCOPES[key]
  if (scope === undefined) throw new Error(`admin API: ${key} names no scope in ADMIN_ROUTE_SCOPES`)
  return scope
}

/** /admin/...: the operator's view. Every route needs a token with its scope; without tokens configured, all are refused. */
export function adminApi(deps: AdminDeps) {
  const { tokens } = deps
  const { services, accountService } = deps
  const { ledger, registry } = services
  const relay = services.settlements?.relay ?? new SettlementRelay(ledger.redis, ledger.keys, services.log)
  const adjustments = new Adjustments(ledger.redis, ledger.keys, relay, ledger.durabilityTimeoutMs)

  const describe = async ({ account, origin, rpcUrl }: LoadedAccount) => {
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
      routes: account.routes,
      sendRoutes: account.sendRoutes,
      receiveRoutes: account.receiveRoutes,
    }
  }

  const adjust = (kind: AdjustmentKind) => async (request: FastifyRequest<{ Params: { id: string }; Body: unknown }>, reply: FastifyReply) => {
    const account = (await registry.readNow(request.params.id))?.account
    if (!account) return reply.code(404).send({ error: `no account ${request.params.id}` })
    const key = request.headers['idempotency-key']
    if (typeof key !== 'string' || key === '' || key.length > MAX_IDEMPOTENCY_KEY_LENGTH) {
      return reply.code(400).send({ error: `Idempotency-Key: a header of 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} characters is required (a retry with the same key applies once)` })
    }
    const body = request.body
    const amount = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).amount : undefined
    if (typeof amount !== 'string' || !isUInt64String(amount) || amount === '0' || /^0\d/.test(amount)) {
      return reply.code(400).send({ error: 'amount: must be a positive integer decimal string in quotes, no larger than 18446744073709551615' })
    }
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
    // a route registered below without a scope stops the server from starting
    app.addHook('onRoute', (route) => {
      for (const method of [route.method].flat()) adminRouteScope(method, route.url)
    })
    app.addHook('onRequest', async (request, reply) => {
      const scope = adminRouteScope(request.method, request.routeOptions.url ?? '')
      const refused = await requireScope(request, reply, tokens, scope, deps.failedAuth)
      if (refused) return refused
    })

    // One page of the accounts in id order: ?cursor=<the last id of the previous page>&limit=<1..1000>.
    app.get<{ Querystring: { cursor?: string; limit?: string } }>('/admin/accounts', async (request, reply) => {
      const { cursor } = request.query
      const limit = request.query.limit === undefined ? DEFAULT_PAGE : Number(request.query.limit)
      if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE) return reply.code(400).send({ error: `limit: must be a whole number from 1 to ${MAX_PAGE}` })
      if (cursor !== undefined && !isValidAddressSegment(cursor)) return reply.code(400).send({ error: 'cursor: must be an account id (the nextCursor of the previous page)' })
      const page = await registry.list(cursor || undefined, limit)
      return { accounts: await Promise.all(page.accounts.map(describe)), nextCursor: page.next ?? null }
    })

    app.get<{ Params: { id: string } }>('/admin/accounts/:id', async (request, reply) => {
      const loaded = await registry.readNow(request.params.id)
      if (!loaded) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return describe(loaded)
    })

    // Runtime accounts: validated like the config file; every worker has the change within a round trip or two.
    // An id of a deleted account is refused (409) unless ?reuseDeletedId=true: then the answer says what the new holder takes over.
    app.post<{ Body: unknown; Querystring: { reuseDeletedId?: string } }>('/admin/accounts', async (request, reply) => {
      const reuseDeletedId = request.query.reuseDeletedId === 'true'
      const result = await accountService.create(request.body, 'admin', { reuseDeletedId })
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      const loaded = await registry.readNow(result.account.id)
      const view = loaded ? await describe(loaded) : { id: result.account.id }
      const inherited = reuseDeletedId && result.reusedDeletedId ? { inherited: { balance: 'balance' in view ? view.balance : '0', note: 'the id belonged to a deleted account: its recorded balance is now this account\'s' } } : {}
      return reply.code(201).send({ account: view, ...inherited, ...(result.token ? { token: result.token } : {}) })
    })

    // Many accounts at once (ilp-farm accounts import): a JSON array, each validated exactly like POST /admin/accounts.
    app.post<{ Body: unknown; Querystring: { update?: string } }>('/admin/accounts/import', { bodyLimit: IMPORT_BODY_BYTES }, async (request, reply) => {
      const body = request.body
      if (!Array.isArray(body)) return reply.code(400).send({ error: 'body: must be a JSON array of accounts, as in the config file' })
      if (body.length > MAX_IMPORT_BATCH) return reply.code(400).send({ error: `body: at most ${MAX_IMPORT_BATCH} accounts per request` })
      return { results: await accountService.importMany(body, { update: request.query.update === 'true' }) }
    })

    app.put<{ Params: { id: string }; Body: unknown }>('/admin/accounts/:id', async (request, reply) => {
      const result = await accountService.update(request.params.id, request.body)
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      const loaded = await registry.readNow(result.account.id)
      return loaded ? describe(loaded) : reply.code(404).send({ error: `no account ${request.params.id}` })
    })

    // Revokes the account's token by replacing it: the new one is answered once, the old one stops on every worker within a round trip.
    app.post<{ Params: { id: string } }>('/admin/accounts/:id/token', async (request, reply) => {
      const rotated = await rotateToken(registry, request.params.id)
      if (!rotated.ok) return reply.code(rotated.status).send({ error: rotated.error })
      return { id: request.params.id, token: rotated.token }
    })

    // The account stops taking and receiving packets at once (packets in flight settle); its balance stays in Redis.
    app.delete<{ Params: { id: string } }>('/admin/accounts/:id', async (request, reply) => {
      const removed = await accountService.remove(request.params.id)
      if (!removed) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return { id: removed.id, balance: (await ledger.balance(removed.id)).balance }
    })

    app.post('/admin/accounts/:id/deposits', adjust('deposit'))
    app.post('/admin/accounts/:id/withdrawals', adjust('withdrawal'))

    // An invitation ticket: one-time, expiring; redeemed over JSON-RPC (ilp_redeemTicket) it creates this account.
    app.post<{ Body: unknown }>('/admin/tickets', async (request, reply) => {
      const body = request.body
      if (body === null || typeof body !== 'object' || Array.isArray(body)) {
        return reply.code(400).send({ error: 'body: must be a JSON object { "account": { relation, assetCode, assetScale, limits... }, "id"?, "callbackUrls"?, "expiresInMs"? }' })
      }
      const b = body as Record<string, unknown>
      const account = b.account
      if (account === null || typeof account !== 'object' || Array.isArray(account)) {
        return reply.code(400).send({ error: 'account: is required: the new account as in the config file, without id and incoming' })
      }
      if (b.id !== undefined && (typeof b.id !== 'string' || b.id === '')) return reply.code(400).send({ error: 'id: must be a string' })
      const lifetimeMs = b.expiresInMs ?? DEFAULT_TICKET_LIFETIME_MS
      if (typeof lifetimeMs !== 'number' || !Number.isInteger(lifetimeMs) || lifetimeMs < 1 || lifetimeMs > MAX_TICKET_LIFETIME_MS) {
        return reply.code(400).send({ error: `expiresInMs: must be a whole number of milliseconds from 1 to ${MAX_TICKET_LIFETIME_MS}` })
      }
      const issued = await deps.onboarding.issueTicket({
        account: account as Record<string, unknown>,
        lifetimeMs,
        ...(typeof b.id === 'string' ? { id: b.id } : {}),
        ...(b.callbackUrls !== undefined ? { callbackUrls: b.callbackUrls } : {}),
      })
      if ('problems' in issued) return reply.code(400).send({ error: `invalid account: ${issued.problems.join('; ')}`, issues: issued.problems })
      return reply.code(201).send(issued)
    })

    app.get('/admin/settlements', async () => (services.settlements ? services.settlements.recent() : []))

    // Packets in flight (their incoming records, through the owners' indexes): owner, expiry, amounts.
    app.get('/admin/hotset', async () => ledger.hotSet())
    app.get('/admin/inflight', async () => ledger.hotSet())

    // The live workers (heartbeat not expired) of every host, with their heartbeat age, the hosts, and the leader.
    const coordination = new Coordination(ledger.redis, ledger.keys)
    app.get('/admin/workers', async () => coordination.status())

    // The routing table: every prefix, its candidates with liquidity, farm-wide successes and failures, health.
    // children are in no table: `<ilpAddress>.<id>` routes to child <id> by its address
    app.get('/admin/routes', async () => ({ policy: services.routes.policy, ilpAddress: services.ilpAddress, routes: await services.routes.describe() }))

    // Adds a static candidate for a prefix at runtime, validated like the config; every worker has it within a second.
    app.put<{ Params: { prefix: string }; Body: unknown }>('/admin/routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const body = request.body
      const accountId = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).account : undefined
      const problem = await checkRoute(prefix, accountId, services.accounts)
      if (problem !== undefined) return reply.code(400).send({ error: problem })
      await services.routes.addStatic(prefix, accountId as string)
      return { prefix, candidates: services.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // Removes a static candidate (?account=<id>), or every static candidate of the prefix; 404 if there was none.
    app.delete<{ Params: { prefix: string }; Querystring: { account?: string } }>('/admin/routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const accountId = request.query.account
      if (!isValidRoutePrefix(prefix)) return reply.code(400).send({ error: 'prefix: must be an ILP address prefix such as "g.bank" or "test" (RFC 15)' })
      const removed = await services.routes.removeStatic(prefix, accountId)
      if (!removed) return reply.code(404).send({ error: `no static route ${prefix}${accountId === undefined ? '' : ` to ${accountId}`}` })
      return { prefix, candidates: services.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // A quote: the other amount and the next hop for a sender, a destination and a source or destination amount.
    // 400 bad input; 422 when a packet would be refused (code F02 no route or no rate, R01 rounds to zero, F08 beyond UInt64).
    app.post<{ Body: unknown }>('/admin/quote', async (request, reply) => {
      const parsed = await quoteRequest(request.body, services.accounts)
      if (typeof parsed === 'string') return reply.code(400).send({ error: parsed })
      try {
        return await quote(parsed, services)
      } catch (err) {
        if (err instanceof QuoteError) return reply.code(422).send({ error: err.message, code: err.code })
        throw err
      }
    })
  }
}

/** `{ from, destination, sourceAmount | destinationAmount }`, or what is wrong with it. */
async function quoteRequest(body: unknown, accounts: AccountDirectory): Promise<QuoteRequest | string> {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return 'body: must be a JSON object { "from", "destination", "sourceAmount" or "destinationAmount" }'
  }
  const b = body as Record<string, unknown>
  if (typeof b.from !== 'string' || b.from === '') return 'from: is required (the sending account\'s id)'
  const from = (await accounts.load(b.from))?.account
  if (!from) return `from: unknown account "${b.from}"`
  if (typeof b.destination !== 'string' || !isValidIlpAddress(b.destination)) {
    return 'destination: must be an ILP address such as "test.farm.bob" (RFC 15)'
  }
  const hasSource = b.sourceAmount !== undefined
  const hasDestination = b.destinationAmount !== undefined
  if (hasSource === hasDestination) return 'give exactly one of sourceAmount and destinationAmount'
  const field = hasSource ? 'sourceAmount' : 'destinationAmount'
  const amount = b[field]
  if (typeof amount !== 'string' || !isUInt64String(amount)) {
    return `${field}: must be a decimal string in quotes, a non-negative integer no larger than 18446744073709551615`
  }
  return hasSource ? { from, destination: b.destination, sourceAmount: amount } : { from, destination: b.destination, destinationAmount: amount }
}

/** The config's checks for a static route (src/config/load.ts): prefix format, account exists and has outgoing.url. */
async function checkRoute(prefix: string, accountId: unknown, accounts: AccountDirectory): Promise<string | undefined> {
  if (!isValidRoutePrefix(prefix)) return 'prefix: must be an ILP address prefix such as "g.bank" or "test" (RFC 15)'
  if (typeof accountId !== 'string' || accountId === '') return 'account: is required (the next hop\'s account id)'
  const loaded = await accounts.load(accountId)
  if (!loaded) return `account: route to a missing account "${accountId}"`
  // A next hop is reached through its outgoing URL or its RPC URL, as in the packet path. One that may
  // register an RPC URL (a user between two `receive` runs) is a next hop too: packets get T01 until it does.
  if (canReceive(loaded) || allowedCallbackPrefixes(loaded.account).length > 0) return undefined
  return `account: account "${accountId}" cannot be reached: no outgoing.url, no RPC URL, and no incoming.callbackUrls to register one under`
}
