import { createHash, randomBytes } from 'node:crypto'
import { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'

/** How long a dashboard login lasts. */
export const SESSION_TTL_MS = 12 * 3600_000

/** A session id: 32 random bytes, base64url (43 characters). */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/

/**
 * Dashboard logins, kept in Redis so that any worker accepts them (the
 * browser's requests land on any worker of the farm) and a logout ends them
 * everywhere. Redis holds only a SHA-256 of each session id: whoever reads
 * Redis cannot take over a session. The admin token itself is never stored.
 *
 * Key: `<prefix>dashboard:session:<sha256 hex>`, value `1`, PX = the session's lifetime.
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

  /** A new session; the id goes into the HttpOnly cookie and nowhere else. */
  async create(): Promise<string> {
    const id = randomBytes(32).toString('base64url')
    await this.redis.set(this.key(id), '1', 'PX', this.ttlMs)
    return id
  }

  async valid(id: string | undefined): Promise<boolean> {
    if (id === undefined || !SESSION_ID.test(id)) return false
    return (await this.redis.exists(this.key(id))) === 1
  }

  async end(id: string | undefined): Promise<void> {
    if (id !== undefined && SESSION_ID.test(id)) await this.redis.del(this.key(id))
  }
}
