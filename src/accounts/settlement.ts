import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { request } from 'undici'
import type { AccountConfig } from '../config/schema.js'
import type { LeaderDuty } from '../farm/coordinator.js'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'

const PRELUDES = ['lib/bigint.lua', 'lib/entry.lua', 'accounts/settlement.lua']
export const ADJUST = new LuaScript('accounts/adjust.lua', PRELUDES)
const SETTLE_CHECK = new LuaScript('accounts/settle-check.lua', PRELUDES)

/** One settlement request: the farm owes `account` this `amount` (base units) to bring its balance back to settleTo. */
export interface SettlementRequest {
  id: string
  account: string
  amount: string
  balance: string
  threshold: string
  settleTo: string
}

function toRequest(id: string, fields: string[]): SettlementRequest {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
  return { id, account: f.account ?? '', amount: f.amount ?? '0', balance: f.balance ?? '0', threshold: f.threshold ?? '0', settleTo: f.settleTo ?? '0' }
}

/** How long the webhook leader waits between attempts for an entry its webhook refused. */
const WEBHOOK_RETRY_MS = 1_000

/**
 * Settlement requests: a Redis stream `{farm}:settlements`, one
 * entry per crossing of an account's settleThreshold (the Lua side,
 * lua/accounts/settlement.lua, makes it exactly one whatever the number of
 * workers), and their delivery to a webhook by the leader, in order, at least
 * once (a cursor in Redis moves past an entry only after a 2xx).
 */
export class Settlements {
  readonly streamKey: string
  private readonly cursorKey: string

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly log: Logger,
    private readonly webhook?: { url: string; token?: string },
  ) {
    this.streamKey = keys.settlements
    this.cursorKey = keys.settlementsWebhook
  }

  /** After a fulfill credited `account`: one script records a request if its balance reached the threshold. */
  async afterCredit(account: AccountConfig): Promise<string | undefined> {
    if (account.settleThreshold === undefined) return undefined
    const id = await SETTLE_CHECK.run(
      this.redis,
      [this.keys.account(account.id), this.streamKey],
      [account.id, account.settleThreshold, account.settleTo ?? '0'],
    )
    return typeof id === 'string' ? id : undefined
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
      const body = JSON.stringify(toRequest(id, fields))
      const headers: Record<string, string> = { 'content-type': 'application/json', 'idempotency-key': id }
      if (this.webhook.token) headers.authorization = `Bearer ${this.webhook.token}`
      try {
        const res = await request(this.webhook.url, { method: 'POST', headers, body, headersTimeout: 5_000, bodyTimeout: 5_000 })
        await res.body.dump()
        if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`webhook answered ${res.statusCode}`)
      } catch (err) {
        this.log.warn({ err, settlement: id }, 'settlement webhook failed; retried')
        break
      }
      await this.redis.set(this.cursorKey, id)
      delivered++
    }
    return delivered
  }

  /** The webhook delivery as a leader duty (src/farm/coordinator.ts). */
  leaderDuty(): LeaderDuty {
    let timer: NodeJS.Timeout | undefined
    let running: Promise<void> | undefined
    const tick = async () => {
      if (running) return
      running = this.deliverWebhooks().then(
        () => undefined,
        (err: unknown) => this.log.warn({ err }, 'settlement webhook delivery failed'),
      )
      await running
      running = undefined
    }
    return {
      start: () => {
        if (!this.webhook || timer) return
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
