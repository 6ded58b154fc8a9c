import type { FastifyReply } from 'fastify'
import type { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'

export interface FailedAuthLimits {
  /** Failed admin-token checks one IP address may make per window, all workers together; 0: no limit. */
  perIp: number
  windowMs: number
}

/**
 * Failed logins with the admin token (dashboard login, /admin, /metrics),
 * counted per caller IP in fixed windows in Redis, so N workers do not give
 * a guesser N times the tries. An address over the limit is refused (429,
 * Retry-After) before its token is looked at, right or wrong, until its
 * window ends: guessing stays slow even for a guess that would be right.
 * Only failures write; a request with no failures in its window costs one GET.
 */
export class FailedAuth {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly limits: FailedAuthLimits,
  ) {}

  private window(now: number): number {
    return Math.floor(now / this.limits.windowMs)
  }

  /** Milliseconds until the address may try again, or undefined when it may try now. Redis failing: may try. */
  async blockedFor(ip: string): Promise<number | undefined> {
    if (this.limits.perIp <= 0) return undefined
    const now = Date.now()
    const window = this.window(now)
    const count = await this.redis.get(this.keys.authFailures(ip, window)).catch(() => null)
    if (count === null || Number(count) < this.limits.perIp) return undefined
    return (window + 1) * this.limits.windowMs - now
  }

  /** Counts one failed check from the address. */
  async failed(ip: string): Promise<void> {
    if (this.limits.perIp <= 0) return
    const key = this.keys.authFailures(ip, this.window(Date.now()))
    await this.redis
      .multi()
      .incr(key)
      .pexpire(key, this.limits.windowMs * 2)
      .exec()
      .catch(() => undefined)
  }
}

/** The answer to an address over its failed-login limit. */
export function tooManyFailures(reply: FastifyReply, retryAfterMs: number): FastifyReply {
  return reply
    .code(429)
    .header('retry-after', String(Math.ceil(retryAfterMs / 1000)))
    .header('cache-control', 'no-store')
    .send({ error: `too many failed logins from this address; retry in ${Math.ceil(retryAfterMs / 1000)} s` })
}
