import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { Adjustments, type AdjustmentKind, MAX_IDEMPOTENCY_KEY_LENGTH } from '../accounts/adjustments.js'
import type { AccountService } from '../accounts/service.js'
import { DEFAULT_TICKET_LIFETIME_MS, MAX_TICKET_LIFETIME_MS, type Onboarding } from '../onboarding/onboarding.js'
import type { AccountConfig } from '../config/schema.js'
import { quote, QuoteError, type QuoteRequest } from '../rates/quote.js'
import type { PacketServices } from '../packet/context.js'
import { isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import { isUInt64String } from '../util/amount.js'
import { Coordination } from '../store/coordination.js'
import { allowedCallbackPrefixes } from '../async/callback-policy.js'
import { authorized, tokenDigest } from './auth.js'

export interface AdminDeps {
  adminToken: string | undefined
  services: PacketServices
  /** Runtime account changes: create, update, delete. */
  accountService: AccountService
  /** Invitation tickets. */
  onboarding: Onboarding
}

/** /admin/...: the operator's view. Every route needs the admin token; without one configured, all are refused. */
export function adminApi(deps: AdminDeps) {
  const digest = deps.adminToken === undefined ? undefined : tokenDigest(deps.adminToken)
  const { services, accountService } = deps
  const { ledger, registry } = services
  const adjustments = new Adjustments(ledger.redis, ledger.keys)

  const describe = async (account: AccountConfig) => {
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
      origin: registry.origin(account.id) ?? null,
      parallelism: account.parallelism ?? null,
      // Tokens are never shown; whether there is one is, so a client can send the account back whole (PUT).
      incoming: account.incoming ? { callbackUrls: account.incoming.callbackUrls ?? null } : null,
      // What the farm will call for it (RPC URL, async Callback-Url): incoming.callbackUrls or their default.
      allowedUrlPrefixes: allowedCallbackPrefixes(account),
      outgoing: account.outgoing ? { url: account.outgoing.url, mode: account.outgoing.mode, hasToken: account.outgoing.token !== undefined } : null,
      rpcUrl: services.userRpc?.url(account.id) ?? null,
      routes: account.routes,
      sendRoutes: account.sendRoutes,
      receiveRoutes: account.receiveRoutes,
    }
  }

  const adjust = (kind: AdjustmentKind) => async (request: FastifyRequest<{ Params: { id: string }; Body: unknown }>, reply: FastifyReply) => {
    const account = registry.get(request.params.id)
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
    const result = await adjustments.adjust(account, kind, amount, key)
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
    app.addHook('onRequest', async (request, reply) => {
      if (!authorized(request.headers.authorization, digest)) return reply.code(401).send({ error: 'unauthorized' })
    })

    app.get('/admin/accounts', async () => Promise.all([...registry.accounts.values()].map(describe)))

    app.get<{ Params: { id: string } }>('/admin/accounts/:id', async (request, reply) => {
      const account = registry.get(request.params.id)
      if (!account) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return describe(account)
    })

    // Runtime accounts: validated like the config file; every worker has the change within a round trip or two.
    app.post<{ Body: unknown }>('/admin/accounts', async (request, reply) => {
      const result = await accountService.create(request.body, 'admin')
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      return reply.code(201).send({ account: await describe(result.account), ...(result.token ? { token: result.token } : {}) })
    })

    app.put<{ Params: { id: string }; Body: unknown }>('/admin/accounts/:id', async (request, reply) => {
      const result = await accountService.update(request.params.id, request.body)
      if (!result.ok) return reply.code(result.status).send({ error: result.error, ...(result.issues ? { issues: result.issues } : {}) })
      return describe(result.account)
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

    // Packets in flight (the hotSet): owner, expiry, amounts.
    app.get('/admin/hotset', async () => ledger.hotSet())
    app.get('/admin/inflight', async () => ledger.hotSet())

    // The live workers (heartbeat not expired) with their heartbeat age, and the leader.
    const coordination = new Coordination(ledger.redis, ledger.keys)
    app.get('/admin/workers', async () => coordination.status())

    // The routing table: every prefix, its candidates with liquidity, farm-wide successes and failures, health.
    app.get('/admin/routes', async () => ({ policy: services.routes.policy, routes: await services.routes.describe() }))

    // Adds a static candidate for a prefix at runtime, validated like the config; every worker has it within a second.
    app.put<{ Params: { prefix: string }; Body: unknown }>('/admin/routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const body = request.body
      const accountId = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).account : undefined
      const problem = checkRoute(prefix, accountId, services.accounts)
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
      const parsed = quoteRequest(request.body, services.accounts)
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
function quoteRequest(body: unknown, accounts: ReadonlyMap<string, AccountConfig>): QuoteRequest | string {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return 'body: must be a JSON object { "from", "destination", "sourceAmount" or "destinationAmount" }'
  }
  const b = body as Record<string, unknown>
  if (typeof b.from !== 'string' || b.from === '') return 'from: is required (the sending account\'s id)'
  const from = accounts.get(b.from)
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
function checkRoute(prefix: string, accountId: unknown, accounts: ReadonlyMap<string, AccountConfig>): string | undefined {
  if (!isValidRoutePrefix(prefix)) return 'prefix: must be an ILP address prefix such as "g.bank" or "test" (RFC 15)'
  if (typeof accountId !== 'string' || accountId === '') return 'account: is required (the next hop\'s account id)'
  const account = accounts.get(accountId)
  if (!account) return `account: route to a missing account "${accountId}"`
  if (!account.outgoing) return `account: account "${accountId}" has no outgoing.url`
  return undefined
}
