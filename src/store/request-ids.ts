import type { Keys } from './keys.js'
import type { RedisClient } from './redis.js'

/** How long a Request-Id stays claimed after the farm is done with its packet: covers the sweeper's delay and clock skew. */
export const REQUEST_ID_MARGIN_MS = 60_000

/** Tombstone value of a sync packet; an async one stores its Callback-Url. */
export const SYNC_TOMBSTONE = 'sync'

/** The account claimed more Request-Ids in the current window than it may (T05 sync, HTTP 429 async). */
export class TooManyRequestIds extends Error {
  constructor(readonly accountId: string) {
    super('too many request ids for this account; retry later')
  }
}

export interface RequestIdLimits {
  /** The farm holds a packet at most this long (outgoing expiry is capped at now + maxHoldTimeMs). */
  maxHoldTimeMs: number
  /** Request-Ids one account may claim per window of maxHoldTimeMs + REQUEST_ID_MARGIN_MS. */
  maxPerAccount: number
}

// KEYS: the Request-Id key, the account's claim counter (one hash slot).
// ARGV: value, key lifetime (ms), counter window (ms), most claims per window.
// Returns 1 claimed, 0 seen before, -1 over the account's limit (nothing written but the counter).
const CLAIM_LUA = `
local n = redis.call('INCR', KEYS[2])
if n == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
if n > tonumber(ARGV[4]) then return -1 end
if redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0
`

type ClaimRedis = RedisClient & { ilpfarmClaimRequestId(rid: string, count: string, value: string, px: number, window: number, max: number): Promise<number> }

/**
 * The replay guard of incoming Request-Ids: one key per (account, Request-Id),
 * claimed with SET NX PX before the reservation. The reservation already refuses an
 * id in flight; this also refuses one that has finished. A claimed id whose
 * reservation is then refused stays claimed (a Request-Id names one attempt).
 *
 * Each key lives for the packet's time in the farm, min(expiry, maxHoldTimeMs),
 * plus a margin, whatever the packet's outcome: the farm has answered by then,
 * and a far-away expiry must not make a key (refused packets included) live for
 * a day. Every claim also counts against the account's window counter, so one
 * account cannot fill Redis with keys faster than they expire.
 */
export class RequestIds {
  private readonly redis: ClaimRedis

  constructor(
    redis: RedisClient,
    private readonly keys: Keys,
    private readonly limits: RequestIdLimits = { maxHoldTimeMs: 30_000, maxPerAccount: 10_000 },
  ) {
    if (typeof (redis as unknown as Partial<ClaimRedis>).ilpfarmClaimRequestId !== 'function') {
      redis.defineCommand('ilpfarmClaimRequestId', { numberOfKeys: 2, lua: CLAIM_LUA })
    }
    this.redis = redis as unknown as ClaimRedis
  }

  /** The lifetime of a Request-Id key claimed now for a prepare expiring at expiresAtMs. */
  lifetimeMs(expiresAtMs: number): number {
    return Math.min(Math.max(expiresAtMs - Date.now(), 0), this.limits.maxHoldTimeMs) + REQUEST_ID_MARGIN_MS
  }

  /**
   * True if the id was free and is now claimed; false if it was seen before.
   * Throws TooManyRequestIds over the account's limit; rejects if Redis fails.
   */
  async claim(accountId: string, requestId: string, expiresAtMs: number, value: string): Promise<boolean> {
    const window = this.limits.maxHoldTimeMs + REQUEST_ID_MARGIN_MS
    const result = await this.redis.ilpfarmClaimRequestId(
      this.keys.requestId(accountId, requestId),
      this.keys.requestIdCount(accountId),
      value,
      this.lifetimeMs(expiresAtMs),
      window,
      this.limits.maxPerAccount,
    )
    if (result === -1) throw new TooManyRequestIds(accountId)
    return result === 1
  }

  /** The Callback-Url recorded for an async packet, if its tombstone is still there. */
  async callbackUrl(accountId: string, requestId: string): Promise<string | undefined> {
    const value = await this.redis.get(this.keys.requestId(accountId, requestId))
    return value === null || value === SYNC_TOMBSTONE ? undefined : value
  }
}
