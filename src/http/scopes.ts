// Operator tokens and their scopes: which token may do what on /admin, /metrics and the dashboard.
import { timingSafeEqual } from 'node:crypto'
import { operatorDigest, type Scope } from '../config/operator-scopes.js'
import { tokenDigest } from './auth.js'

export { operatorDigest, SCOPES, type Scope } from '../config/operator-scopes.js'

/** One operator token as the farm keeps it: a name for logs and messages, the SHA-256 digest, the scopes. */
export interface OperatorToken {
  name: string
  digest: Buffer
  scopes: ReadonlySet<Scope>
}

/** The `admin` block's tokens as the config gives them (exactly one of token and tokenHash). */
export interface OperatorTokenConfig {
  name: string
  token?: string
  tokenHash?: string
  scopes: Scope[]
}

/** The name `admin.token` goes by among the scoped tokens. */
export const ADMIN_TOKEN_NAME = 'admin.token'

/** True when a token holding these scopes may act where `needed` is required. */
export function grants(scopes: ReadonlySet<Scope>, needed: Scope): boolean {
  return scopes.has('admin') || scopes.has(needed)
}

/**
 * Every operator token of the farm, as digests only: `admin.token` (every
 * scope) and each entry of `admin.tokens`. A presented token is hashed once
 * and compared with every digest in constant time (no early exit, so the
 * time taken does not tell which entry came close). The config refuses two
 * entries with one digest, so at most one matches.
 */
export class OperatorTokens {
  private readonly tokens: OperatorToken[]

  constructor(adminToken: string | undefined, scoped: readonly OperatorTokenConfig[] = []) {
    this.tokens = []
    if (adminToken !== undefined) this.tokens.push({ name: ADMIN_TOKEN_NAME, digest: operatorDigest({ token: adminToken }), scopes: new Set<Scope>(['admin']) })
    for (const t of scoped) {
      const digest = operatorDigest(t)
      if (digest.length !== 32) throw new Error(`admin.tokens ${t.name}: no token or tokenHash`)
      this.tokens.push({ name: t.name, digest, scopes: new Set(t.scopes) })
    }
  }

  /** The entry whose token this is, or undefined. */
  find(token: string): OperatorToken | undefined {
    const digest = tokenDigest(token)
    let found: OperatorToken | undefined
    for (const entry of this.tokens) {
      if (timingSafeEqual(digest, entry.digest) && found === undefined) found = entry
    }
    return found
  }
}

/** The 403 body: which scope the token lacks. */
export function lacksScope(scope: Scope): { error: string; scope: Scope } {
  return { error: `this token lacks the scope ${scope}`, scope }
}
