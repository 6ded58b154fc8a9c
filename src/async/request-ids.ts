import type { Redis } from 'ioredis'
import type { Keys } from '../store/keys.js'

/** How long a Request-Id stays claimed after its prepare expires: covers the sweeper's delay and clock skew. */
export const REQUEST_ID_MARGIN_MS = 60_000
/** An expiry further away than this still keeps its Request-Id for this long only (bounded memory). */
export const REQUEST_ID_MAX_LIFETIME_MS = 24 * 60 * 60 * 1000

/** Tombstone value of a sync packet; an async one stores its Callback-Url. */
export const SYNC_TOMBSTONE = 'sync'

/**
 * The replay guard of incoming Request-Ids: one key per (account, Request-Id),
 * claimed with SET NX PX before the reservation and left to expire after the
 * packet's lifetime plus a margin. The hotSet already refuses an id in flight;
 * this also refuses one that has finished. Plain commands, no script: a
 * claimed id whose reservation is then refused stays claimed (a Request-Id
 * names one attempt).
 */
export class RequestIds {
  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
  ) {}

  /** True if the id was free and is now claimed; false if it was seen before. Rejects if Redis fails. */
  async claim(accountId: string, requestId: string, expiresAtMs: number, value: string): Promise<boolean> {
    const lifetime = Math.min(Math.max(expiresAtMs - Date.now(), 0), REQUEST_ID_MAX_LIFETIME_MS)
    const result = await this.redis.set(this.keys.requestId(accountId, requestId), value, 'PX', lifetime + REQUEST_ID_MARGIN_MS, 'NX')
    return result === 'OK'
  }

  /** The Callback-Url recorded for an async packet, if its tombstone is still there. */
  async callbackUrl(accountId: string, requestId: string): Promise<string | undefined> {
    const value = await this.redis.get(this.keys.requestId(accountId, requestId))
    return value === null || value === SYNC_TOMBSTONE ? undefined : value
  }
}
