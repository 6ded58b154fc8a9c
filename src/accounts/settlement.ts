import type { Cluster, Redis } from 'ioredis'
import type { Logger } from 'pino'
import { request as post } from 'undici'
import type { AccountConfig } from '../config/schema.js'
import type { LeaderDuty } from '../store/coordination.js'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'
import { parseUnrelayed, SettlementRelay } from './settlement-relay.js'

const PRELUDES = ['lib/bigint.lua', 'lib/entry.lua', 'accounts/settlement.lua']
export const ADJUST = new LuaScript('accounts/adjust.lua', PRELUDES)
export const SETTLE_CHECK = new LuaScript('accounts/settle-check.lua', PRELUDES)
const SETTLE_TOUCHED = new LuaScript('accounts/settle-touched.lua')

/** One settlement request: the farm owes `account` this `amount` (base units) to bring its balance back to settleTo. */
export interface SettlementRequest {
  /** `<account>:<ms>-<seq>`, made in the account's slot; a withdrawal with it as Idempotency-Key pays the request. */
  id: string
  account: string
  amount: string
  balance: string
  threshold: string
  settleTo: string
  /** When the crossing was recorded (ms since the epoch, Redis' clock); absent for requests of older farms. */
  requestedAt?: string
}

/** A stream entry as a request; an entry of an older farm has no `id` field: its id was the entry id. */
function toRequest(entryId: string, fields: string[]): SettlementRequest {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
  return {
    id: f.id ?? entryId,
    account: f.account ?? '',
    amount: f.amount ?? '0',
    balance: f.balance ?? '0',
    threshold: f.threshold ?? '0',
    settleTo: f.settleTo ?? '0',
    ...(f.requestedAt === undefined ? {} : { requestedAt: f.requestedAt }),
  }
}

/** How long the webhook leader waits between attempts for an entry its webhook refused. */
const WEBHOOK_RETRY_MS = 1_000
/** How often the leader relays what recently checked accounts left, and how old a check must be (far above a check's round trip, and TOUCH_REFRESH_MS). */
const LEFTOVERS_EVERY_MS = 5_000
export const LEFTOVERS_GRACE_MS = 30_000
/** Accounts the leader looks at per pass. */
const LEFTOVERS_BATCH = 100

/**
 * Settlement requests: one per crossing of an account's settleThreshold,
 * recorded in the account's own slot (lua/accounts/settlement.lua makes it
 * exactly one whatever the number of workers), relayed to the Redis stream
 * `{farm}:settlements` once each (SettlementRelay), and delivered from there
 * to a webhook by the leader, in order, at least once (a cursor in Redis
 * moves past an entry only after a 2xx).
 */
export class Settlements {
  readonly streamKey: string
  private readonly cursorKey: string
  /** Steps 2 and 3 of every request this worker's checks return, retried until they land. */
  readonly relay: SettlementRelay

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly keys: Keys,
    private readonly log: Logger,
    private readonly webhook?: { url: string; token?: string },
  ) {
    this.streamKey = keys.settlements
    this.cursorKey = keys.settlementsWebhook
    this.relay = new SettlementRelay(redis, keys, log)
  }

  /**
   * After a fulfill credited `account`: one script in the account's slot
   * records a request if its balance reached the threshold, then what the
   * account has unrelayed (this request, or one a crash left) goes to the
   * stream. Returns the new request's id.
   */
  async afterCredit(account: AccountConfig): Promise<string | undefined> {
    if (account.settleThreshold === undefined) return undefined
    await this.relay.touch(account.id)
    const [id, unrelayed] = (await SETTLE_CHECK.run(
      this.redis,
      [this.keys.account(account.id), this.keys.settleRequests(account.id)],
      [account.id, account.settleThreshold, account.settleTo ?? '0'],
    )) as [string, unknown]
    await this.relay.relay(parseUnrelayed(account.id, unrelayed))
    return id === '' ? undefined : id
  }

  /**
   * Leader duty: for each account checked more than `graceMs` ago (by Redis'
   * clock) and not since, relays what it left unrelayed (a check with no
   * threshold records nothing and returns them), then forgets the account
   * unless it was checked again meanwhile. What a worker that died between a
   * check and its relay left is thus relayed without waiting for the
   * account's next check. Returns how many accounts it looked at.
   */
  async relayLeftovers(graceMs = LEFTOVERS_GRACE_MS, limit = LEFTOVERS_BATCH): Promise<number> {
    const due = (await SETTLE_TOUCHED.run(this.redis, [this.keys.settlementsTouched], ['due', graceMs, limit])) as string[]
    for (let i = 0; i + 1 < due.length; i += 2) {
      const account = due[i]!
      const [, unrelayed] = (await SETTLE_CHECK.run(this.redis, [this.keys.account(account), this.keys.settleRequests(account)], [account, '', '0'])) as [string, unknown]
      if (await this.relay.relay(parseUnrelayed(account, unrelayed))) {
        await SETTLE_TOUCHED.run(this.redis, [this.keys.settlementsTouched], ['forget', account, due[i + 1]!])
      }
    }
    return due.length / 2
  }

  /** The newest requests, newest first. */
  async recent(count = 100): Promise<SettlementRequest[]> {
    const entries = (await this.redis.xrevrange(this.streamKey, '+', '-', 'COUNT', count)) as Array<[string, string[]]>
    return entries.map(([id, fields]) => toRequest(id, fields))
  }

  /** Leader duty: POSTs every request after the cursor to the webhook, in order; stops at the first failure. */
  async deliverWebhooks(): Promise<number> {
    if (!this.webhook) return 0
    const cursor = (await this.redis.get(this.cursorKey)) ?? '0-0'
    const entries = (await this.redis.xrange(this.streamKey, `(${cursor}`, '+', 'COUNT', 100)) as Array<[string, string[]]>
    let delivered = 0
    for (const [id, fields] of entries) {
      const request = toRequest(id, fields)
      const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': request.id }
      if (this.webhook.token) headers.authorization = `Bearer ${this.webhook.token}`
      try {
        const res = await post(this.webhook.url, { method: 'POST', headers, body: JSON.stringify(request), headersTimeout: 5_000, bodyTimeout: 5_000 })
        await res.body.dump()
        if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`webhook answered ${res.statusCode}`)
      } catch (err) {
        this.log.warn({ err, settlement: request.id }, 'settlement webhook failed; retried')
        break
      }
      await this.redis.set(this.cursorKey, id)
      delivered++
    }
    return delivered
  }

  /** Before the worker closes: the relays still pending tried once more, then no more retries. Returns how many are left (their accounts keep them). */
  async close(): Promise<number> {
    await this.relay.flush()
    return this.relay.close()
  }

  /** The leftovers' relay and the webhook delivery as a leader duty (src/farm/coordinator.ts). */
  leaderDuty(): LeaderDuty {
    let timer: NodeJS.Timeout | undefined
    let running: Promise<void> | undefined
    let leftoversAt = 0
    const pass = async () => {
      if (Date.now() - leftoversAt >= LEFTOVERS_EVERY_MS) {
        leftoversAt = Date.now()
        await this.relayLeftovers().catch((err: unknown) => this.log.warn({ err }, 'relaying settlement leftovers failed'))
      }
      if (this.webhook) await this.deliverWebhooks().catch((err: unknown) => this.log.warn({ err }, 'settlement webhook delivery failed'))
    }
    const tick = async () => {
      if (running) return
      running = pass()
      await running
      running = undefined
    }
    return {
      start: () => {
        if (timer) return
        timer = setInterval(() => void tick(), WEBHOOK_RETRY_MS)
        timer.unref()
        void tick()
      },
      stop: async () => {
        if (timer) clearInterval(timer)
        timer = undefined
        await running
      },
    }
  }
}
