import type { FastifyInstance } from 'fastify'
import type { AccountConfig } from '../config/schema.js'
import { quote, QuoteError, type QuoteRequest } from '../rates/quote.js'
import type { Rates } from '../rates/rates.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import { isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import { isUInt64String } from '../util/amount.js'
import { Coordination } from '../store/coordination.js'
import type { Ledger } from '../store/ledger.js'
import { authorized, tokenDigest } from './auth.js'

export interface AdminDeps {
  adminToken: string | undefined
  accounts: ReadonlyMap<string, AccountConfig>
  ledger: Ledger
  routes: AddressMapper
  /** Exchange rates (quotes). */
  rates: Rates
}

/** /admin/...: the operator's view. Every route needs the admin token; without one configured, all are refused. */
export function adminApi(deps: AdminDeps) {
  const digest = deps.adminToken === undefined ? undefined : tokenDigest(deps.adminToken)

  const describe = async (account: AccountConfig) => {
    const b = await deps.ledger.balance(account.id)
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
    }
  }

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addHook('onRequest', async (request, reply) => {
      if (!authorized(request.headers.authorization, digest)) return reply.code(401).send({ error: 'unauthorized' })
    })

    app.get('/admin/accounts', async () => Promise.all([...deps.accounts.values()].map(describe)))

    app.get<{ Params: { id: string } }>('/admin/accounts/:id', async (request, reply) => {
      const account = deps.accounts.get(request.params.id)
      if (!account) return reply.code(404).send({ error: `no account ${request.params.id}` })
      return describe(account)
    })

    app.get('/admin/hotset', async () => deps.ledger.hotSet())

    // The live workers (heartbeat not expired) with their heartbeat age, and the leader.
    const coordination = new Coordination(deps.ledger.redis, deps.ledger.keys)
    app.get('/admin/workers', async () => coordination.status())

    // The routing table: every prefix, its candidates with liquidity, farm-wide successes and failures, health.
    app.get('/admin/routes', async () => ({ policy: deps.routes.policy, routes: await deps.routes.describe() }))

    // Adds a static candidate for a prefix at runtime, validated like the config; every worker has it within a second.
    app.put<{ Params: { prefix: string }; Body: unknown }>('/admin/routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const body = request.body
      const accountId = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).account : undefined
      const problem = checkRoute(prefix, accountId, deps.accounts)
      if (problem !== undefined) return reply.code(400).send({ error: problem })
      await deps.routes.addStatic(prefix, accountId as string)
      return { prefix, candidates: deps.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // Removes a static candidate (?account=<id>), or every static candidate of the prefix; 404 if there was none.
    app.delete<{ Params: { prefix: string }; Querystring: { account?: string } }>('/admin/routes/:prefix', async (request, reply) => {
      const { prefix } = request.params
      const accountId = request.query.account
      if (!isValidRoutePrefix(prefix)) return reply.code(400).send({ error: 'prefix: must be an ILP address prefix such as "g.bank" or "test" (RFC 15)' })
      const removed = await deps.routes.removeStatic(prefix, accountId)
      if (!removed) return reply.code(404).send({ error: `no static route ${prefix}${accountId === undefined ? '' : ` to ${accountId}`}` })
      return { prefix, candidates: deps.routes.table.get(prefix)?.candidates.map((c) => c.accountId) ?? [] }
    })

    // A quote: the other amount and the next hop for a sender, a destination and a source or destination amount.
    // 400 bad input; 422 when a packet would be refused (code F02 no route or no rate, R01 rounds to zero, F08 beyond UInt64).
    app.post<{ Body: unknown }>('/admin/quote', async (request, reply) => {
      const parsed = quoteRequest(request.body, deps.accounts)
      if (typeof parsed === 'string') return reply.code(400).send({ error: parsed })
      try {
        return await quote(parsed, deps)
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
