/**
 * The operator's side of the HTTP server: /admin, /metrics and the
 * dashboard, inside one plugin whose hook checks operator tokens. A route
 * there names the scope it needs in its config (`config: { scope }`); the
 * hook refuses the request before its body is read. The dashboard's login
 * checks the token of its form with the same OperatorAuth, so a presented
 * token is hashed and looked up in one place, and every failure counts
 * towards the same failed-auth limit.
 */
import type { FastifyInstance, FastifyReply } from 'fastify'
import { bearerToken } from './auth.js'
import { type FailedAuth, tooManyFailures } from './failed-auth.js'
import { grants, lacksScope, type OperatorToken, type OperatorTokens, type Scope } from './scopes.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The operator scope the route needs (`Authorization: Bearer`, checked by operatorAuth's hook).
     * Unset: the route checks its caller itself (the dashboard's session) or serves everyone (its page).
     */
    scope?: Scope
  }
}

/** Longer than any token the farm would hold: refused without being hashed. */
const MAX_TOKEN_LENGTH = 4096

/** The outcome of a token check: the token's entry, or why it is refused. */
export type OperatorCheck =
  | { readonly ok: true; readonly token: OperatorToken }
  | { readonly ok: false; readonly status: 429; readonly retryAfterMs: number }
  | { readonly ok: false; readonly status: 401 }
  | { readonly ok: false; readonly status: 403; readonly scope: Scope }

/**
 * Checks a presented operator token for a scope. An address over its
 * failed-auth limit is refused (429) before its token is looked at, right or
 * wrong. An unknown token is counted as a failure; no token at all guesses
 * nothing and is not counted; a known token without the scope (403) guessed
 * nothing either.
 */
export class OperatorAuth {
  constructor(
    private readonly tokens: OperatorTokens,
    private readonly failedAuth?: FailedAuth,
  ) {}

  async check(ip: string, token: string | undefined, scope: Scope): Promise<OperatorCheck> {
    const wait = await this.failedAuth?.blockedFor(ip)
    if (wait !== undefined) return { ok: false, status: 429, retryAfterMs: wait }
    const entry = token === undefined || token === '' || token.length > MAX_TOKEN_LENGTH ? undefined : this.tokens.find(token)
    if (entry === undefined) {
      if (token !== undefined) await this.failedAuth?.failed(ip)
      return { ok: false, status: 401 }
    }
    if (!grants(entry.scopes, scope)) return { ok: false, status: 403, scope }
    return { ok: true, token: entry }
  }
}

/** The answer to a refused check, as /admin and /metrics give it. */
export function refuse(reply: FastifyReply, refused: Exclude<OperatorCheck, { ok: true }>): FastifyReply {
  switch (refused.status) {
    case 429:
      return tooManyFailures(reply, refused.retryAfterMs)
    case 401:
      return reply.code(401).send({ error: 'unauthorized' })
    case 403:
      return reply.code(403).send(lacksScope(refused.scope))
  }
}

/**
 * The plugin the operator's routes are registered in (`routes` registers
 * them): each route with `config.scope` is refused, before anything else of
 * it runs, unless its `Authorization: Bearer` token holds that scope.
 */
export function operatorAuth(auth: OperatorAuth, routes: (app: FastifyInstance) => Promise<void>) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addHook('onRequest', async (request, reply) => {
      const scope = request.routeOptions.config.scope
      if (scope === undefined) return
      const checked = await auth.check(request.ip, bearerToken(request.headers.authorization), scope)
      if (!checked.ok) return refuse(reply, checked)
    })
    await routes(app)
  }
}
