import { createHash } from 'node:crypto'
import type { AccountConfig } from '../config/schema.js'
import { waitForReplica } from '../store/durability.js'
import type { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'
import { ADJUST } from './settlement.js'
import { parseUnrelayed, type SettlementRelay } from './settlement-relay.js'

export type AdjustmentKind = 'deposit' | 'withdrawal'

export type AdjustmentResult =
  | { status: 'applied' | 'replayed'; balance: string; settlementId?: string }
  | { status: 'conflict' }
  | { status: 'insufficient-balance'; balance: string }

/** How long an idempotency key is remembered: a retry within this time applies nothing. */
export const IDEMPOTENCY_TTL_MS = 7 * 24 * 3600 * 1000
/** Longest Idempotency-Key taken (it is hashed for the Redis key, but a bound keeps requests sane). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200

/**
 * Deposits and withdrawals: the operator moves an account's balance
 * (money that arrived or was paid out outside ILP). One script per request:
 * it checks the key, the limit, moves the balance and records the key, so a
 * retried request applies once, whichever worker it reaches. The script also
 * records a settlement request when the change crossed the account's
 * settleThreshold (step 1, in the account's slot); the request, and any the
 * account still has unrelayed, then goes to the farm's stream (`relay`).
 */
export class Adjustments {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly relay: SettlementRelay,
    /** `redis.durability: replica`: an adjustment is answered once a replica has it (else DurabilityError). */
    private readonly durabilityTimeoutMs?: number,
  ) {}

  async adjust(account: AccountConfig, kind: AdjustmentKind, amount: string, idempotencyKey: string): Promise<AdjustmentResult> {
    const keyDigest = createHash('sha256').update(idempotencyKey).digest('hex')
    if (account.settleThreshold !== undefined) await this.relay.touch(account.id)
    const [status, balance, settlementId, unrelayed] = (await ADJUST.run(
      this.redis,
      [this.keys.account(account.id), this.keys.idempotency(account.id, keyDigest), this.keys.settleRequests(account.id)],
      [
        kind,
        amount,
        account.minBalance,
        IDEMPOTENCY_TTL_MS,
        account.id,
        account.settleThreshold ?? '',
        account.settleTo ?? '0',
        idempotencyKey,
      ],
    )) as [string, string, string, unknown]
    if (this.durabilityTimeoutMs !== undefined) await waitForReplica(this.redis, this.keys.account(account.id), this.durabilityTimeoutMs)
    await this.relay.relay(parseUnrelayed(account.id, unrelayed))
    switch (status) {
      case 'APPLIED':
        return settlementId ? { status: 'applied', balance, settlementId } : { status: 'applied', balance }
      case 'REPLAYED':
        return { status: 'replayed', balance }
      case 'CONFLICT':
        return { status: 'conflict' }
      default:
        return { status: 'insufficient-balance', balance }
    }
  }
}
