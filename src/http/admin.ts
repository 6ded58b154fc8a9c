import type { FastifyInstance } from 'fastify'
import type { AccountConfig } from '../config/schema.js'
import { Coordination } from '../store/coordination.js'
import type { Ledger } from '../store/ledger.js'
import { authorized, tokenDigest } from './auth.js'

export interface AdminDeps {
  adminToken: string | undefined
  accounts: ReadonlyMap<string, AccountConfig>
  ledger: Ledger
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
  }
}
