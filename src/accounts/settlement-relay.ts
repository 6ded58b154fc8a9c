import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'

/** Step 2: appends a request to the farm's stream, once per request id. */
export const SETTLE_RELAY = new LuaScript('accounts/settle-relay.lua')
const SETTLE_TOUCH = new LuaScript('accounts/settle-touch.lua')

/** A settlement request recorded in its account's slot (step 1, lua/accounts/settlement.lua), not yet marked relayed. */
export interface UnrelayedRequest {
  id: string
  account: string
  /** The account's counter: its requests are relayed in this order. */
  seq: number
  amount: string
  balance: string
  threshold: string
  settleTo: string
  requestedAt: string
}

/** The unrelayed requests a script returned (`{ id, fields, ... }`, fields `<seq>|<amount>|<balance>|<threshold>|<settleTo>|<requestedAtMs>`), oldest first. */
export function parseUnrelayed(account: string, flat: unknown): UnrelayedRequest[] {
  if (!Array.isArray(flat)) return []
  const out: UnrelayedRequest[] = []
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const [seq = '0', amount = '0', balance = '0', threshold = '0', settleTo = '0', requestedAt = '0'] = String(flat[i + 1]).split('|')
    out.push({ id: String(flat[i]), account, seq: Number(seq), amount, balance, threshold, settleTo, requestedAt })
  }
  return out.sort((a, b) => a.seq - b.seq)
}

/** Longest wait between two retry passes. */
const MAX_BACKOFF_MS = 5_000
/** A worker registers an account it checks at most this often (settle-touch.lua); the leader's grace is much longer. */
export const TOUCH_REFRESH_MS = 1_000

/**
 * Steps 2 and 3 of a settlement request: append it to the farm's stream
 * (lua/accounts/settle-relay.lua, the farm's slot: once per request id,
 * however many workers relay it) and then mark it relayed in its account
 * (HDEL from `{acct:<id>}:settle`, the account's slot). The two steps are
 * apart because the two slots may be on different Redis Cluster nodes.
 *
 * Who owns an unrelayed request: the account's own slot holds it until step
 * 3, and every check of the account (the next fulfill crediting it, deposit
 * or withdrawal) returns it to be relayed again. The worker that ran a check
 * owns the relay meanwhile: when a step fails (Redis away) it keeps the
 * request in memory and retries with backoff until both land, like the packet
 * Resolver. A worker that dies loses only that retry: the request stays in
 * the account's slot and is relayed by the account's next check, or by the
 * leader (below). An
 * account's requests are relayed in their order (`seq`): one that cannot be
 * relayed holds back the later ones of the same account.
 *
 * Before a check, `touch` registers the account in the farm's set of
 * recently checked accounts: the leader relays what such an account left
 * once its registration is old enough (Settlements.relayLeftovers), so a
 * request left by a dead worker does not wait for the account's next check.
 */
export class SettlementRelay {
  /** Requests whose relay failed, by request id, in the order they came. */
  private readonly pending = new Map<string, UnrelayedRequest>()
  /** When this worker last registered each account it checked. */
  private readonly touched = new Map<string, number>()
  private failures = 0
  private timer: NodeJS.Timeout | undefined
  private retrying: Promise<void> | undefined
  private closed = false

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  /** Requests waiting for a retry. */
  get backlog(): number {
    return this.pending.size
  }

  /**
   * Before a check of the account: registers it in `{farm}:settlements:touched`
   * (once a second at most per account and worker). A failure is logged, not
   * thrown: the check goes on, and a request it makes is then relayed by this
   * worker's retries or by the account's next check.
   */
  async touch(accountId: string): Promise<void> {
    const now = Date.now()
    const last = this.touched.get(accountId)
    if (last !== undefined && now - last < TOUCH_REFRESH_MS) return
    try {
      await SETTLE_TOUCH.run(this.redis, [this.keys.settlementsTouched], [accountId])
      if (this.touched.size >= 10_000) this.touched.clear()
      this.touched.set(accountId, now)
    } catch (err) {
      this.log.warn({ err, accountId }, 'could not register the settlement check with the leader')
    }
  }

  /** Relays each request (steps 2 and 3) in order; whatever fails is kept and retried. Never throws. Returns whether all landed. */
  async relay(requests: readonly UnrelayedRequest[]): Promise<boolean> {
    const byAccount = new Map<string, UnrelayedRequest[]>()
    for (const r of [...requests].sort((a, b) => a.seq - b.seq)) {
      const list = byAccount.get(r.account)
      if (list) list.push(r)
      else byAccount.set(r.account, [r])
    }
    const failed = (await Promise.all([...byAccount.values()].map((list) => this.relayInOrder(list)))).some((ok) => !ok)
    if (failed) this.schedule()
    return !failed
  }

  /** One account's requests, oldest first: stops at the first that fails and keeps it and the later ones. */
  private async relayInOrder(requests: readonly UnrelayedRequest[]): Promise<boolean> {
    for (const [i, request] of requests.entries()) {
      try {
        await this.relayOne(request)
        this.pending.delete(request.id)
      } catch (err) {
        this.log.warn({ err, settlement: request.id }, 'could not relay the settlement request to the stream; will retry')
        for (const later of requests.slice(i)) if (!this.pending.has(later.id)) this.pending.set(later.id, later)
        return false
      }
    }
    return true
  }

  /** Step 2 then step 3. Returns the stream entry id, or undefined when the request was in the stream already. */
  async relayOne(r: UnrelayedRequest): Promise<string | undefined> {
    const entry = await SETTLE_RELAY.run(
      this.redis,
      [this.keys.settlements, this.keys.settlementsRelayed],
      [r.id, r.account, r.amount, r.balance, r.threshold, r.settleTo, r.requestedAt],
    )
    await this.redis.hdel(this.keys.settleRequests(r.account), r.id)
    return typeof entry === 'string' ? entry : undefined
  }

  private schedule(): void {
    if (this.timer || this.retrying || this.closed || this.pending.size === 0) return
    this.timer = setTimeout(() => void this.retry(), Math.min(100 * 2 ** this.failures, MAX_BACKOFF_MS))
    this.timer.unref()
  }

  private retry(): Promise<void> {
    this.timer = undefined
    this.retrying ??= this.retryPending().finally(() => {
      this.retrying = undefined
      this.schedule()
    })
    return this.retrying
  }

  /** One pass over what is pending; the backoff grows while nothing lands. */
  private async retryPending(): Promise<void> {
    if (this.closed || this.pending.size === 0) return
    const before = this.pending.size
    await this.relay([...this.pending.values()])
    this.failures = this.pending.size < before ? 0 : Math.min(this.failures + 1, 10)
  }

  /** Tries what is pending once more now (before close). */
  async flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer)
    await this.retry()
  }

  /** Stops retrying; what is left stays in its account's slot for the account's next check. */
  close(): number {
    this.closed = true
    if (this.timer) clearTimeout(this.timer)
    return this.pending.size
  }
}
