import { createHash, randomBytes } from 'node:crypto'
import { Keys } from '../store/keys.js'
import { SCOPES, type Scope } from '../config/operator-scopes.js'
import type { RedisClient } from '../store/redis.js'

/** How long a dashboard login lasts. */
export const SESSION_TTL_MS = 12 * 3600_000

/** A session id: 32 random bytes, base64url (43 characters). */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/

/**
 * Dashboard logins, kept in Redis so that any worker accepts them (the
 * browser's requests land on any worker of the farm) and a logout ends them
 * everywhere. Redis holds only a SHA-256 of each session id: whoever reads
 * Redis cannot take over a session. The operator token itself is never
 * stored; the session remembers the scopes of the token that logged in, so
 * each view and action checks its own scope.
 *
 * Key: `<prefix>dashboard:session:<sha256 hex>`, value the scopes joined by
 * "," (a session of an older farm holds `1`: it logged in with admin.token,
 * every scope), PX = the session's lifetime. Nobody cleans up: the key expires.
 */
export class DashboardSessions {
  constructor(
    private readonly redis: RedisClient,
    private readonly keyPrefix: string,
    private readonly ttlMs = SESSION_TTL_MS,
  ) {}

  private key(id: string): string {
    return new Keys(this.keyPrefix).dashboardSession(createHash('sha256').update(id).digest('hex'))
  }

  /** A new session with the scopes of the token that logged in; the id goes into the HttpOnly cookie and nowhere else. */
  async create(scopes: Iterable<Scope>): Promise<string> {
    const id = randomBytes(32).toString('base64url')
    await this.redis.set(this.key(id), [...scopes].join(','), 'PX', this.ttlMs)
    return id
  }

  async valid(id: string | undefined): Promise<boolean> {
    if (id === undefined || !SESSION_ID.test(id)) return false
    return (await this.redis.exists(this.key(id))) === 1
  }

  /** The session's scopes, or undefined when it is not (or no longer) valid. */
  async scopes(id: string | undefined): Promise<ReadonlySet<Scope> | undefined> {
    if (id === undefined || !SESSION_ID.test(id)) return undefined
    const value = await this.redis.get(this.key(id))
    if (value === null) return undefined
    if (value === '1') return new Set<Scope>(['admin'])
    return new Set(value.split(',').filter((s): s is Scope => (SCOPES as readonly string[]).includes(s)))
  }

  async end(id: string | undefined): Promise<void> {
    if (id !== undefined && SESSION_ID.test(id)) await this.redis.del(this.key(id))
  }
}
