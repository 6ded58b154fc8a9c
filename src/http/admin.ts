import type { FastifyInstance } from 'fastify'
import type { AccountConfig } from '../config/schema.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import { isValidRoutePrefix } from '../util/address.js'
import { Coordination } from '../store/coordination.js'
import type { Ledger } from '../store/ledger.js'
import { authorized, tokenDigest } from './auth.js'

export interface AdminDeps {
  adminToken: string | undefined
  accounts: ReadonlyMap<string, AccountConfig>
  ledger: Ledger
  routes: AddressMapper
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
  }
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
