import { randomInt } from 'node:crypto'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'
import type { RedisClient } from '../store/redis.js'

const RECORD = new LuaScript('payments/record.lua', ['lib/bigint.lua'])

/** One payment of an account, as ilp_getPayments and the admin API show it. Amounts are integer strings. */
export interface PaymentEntry {
  id: string
  direction: 'incoming' | 'outgoing'
  /** Outgoing: running until the sender is done. Incoming: received (its packets so far). */
  state: 'running' | 'completed' | 'failed' | 'received'
  /** What the account sent (outgoing) or was credited (incoming), in its own asset. */
  amount: string
  /** Outgoing: what the receiver got, in its asset. */
  delivered?: string
  /** Outgoing: the payment pointer or SPSP URL paid. Incoming: the sending account (`<id>`, a farm account). */
  counterpart: string
  assetCode: string
  assetScale: number
  destinationAssetCode?: string
  destinationAssetScale?: number
  startedAt: string
  finishedAt?: string
  /** Outgoing, running: when its worker gives up on it; still running after this, its worker died. */
  deadlineAt?: string
  /** Incoming: when its last packet arrived, and how many there were. */
  lastAt?: string
  packets?: number
  /** Incoming, with receipts asked for at SPSP: the latest STREAM receipt (RFC 39, base64) and its total. */
  receipt?: string
  receiptTotal?: string
  /** Outgoing, failed: why (the STREAM sender's error, or the farm's reject it met). */
  error?: string
}

/** A page of history, newest first; `cursor` fetches the next (older) one. */
export interface PaymentPage {
  payments: PaymentEntry[]
  cursor?: string
}

/** Entries kept per account; older ones are dropped as new ones come. */
export const MAX_HISTORY = 1_000

/** A sort key unique enough per account: the start in ms, then a tiebreak. */
function scoreOf(startedAtMs: number): number {
  return startedAtMs * 1000 + randomInt(1000)
}

/**
 * The accounts' payment histories, each in its own account's slot (one
 * script per change): outgoing payments written whole as they progress,
 * incoming ones (a STREAM connection to the farm-hosted receiver) added to
 * as their packets are credited.
 */
export class PaymentHistory {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly max = MAX_HISTORY,
  ) {}

  /** Writes an outgoing payment's entry (new, or as it changes: its place in the history stays). */
  async put(accountId: string, entry: PaymentEntry): Promise<void> {
    await RECORD.run(this.redis, [this.keys.payments(accountId), this.keys.paymentEntries(accountId), this.keys.paymentEvents(accountId)], [
      'put',
      entry.id,
      scoreOf(Date.parse(entry.startedAt)),
      this.max,
      JSON.stringify(entry),
    ])
  }

  /**
   * Adds a credited packet to the incoming payment `connectionId` of `accountId`, starting it if new, with
   * the receipt it carried (kept when its total is the highest yet).
   */
  async credit(
    accountId: string,
    connectionId: string,
    amount: string,
    receipt: { receipt: string; total: string } | undefined,
    start: Omit<PaymentEntry, 'id' | 'amount' | 'packets' | 'lastAt'>,
  ): Promise<void> {
    const id = `in-${connectionId}`
    await RECORD.run(this.redis, [this.keys.payments(accountId), this.keys.paymentEntries(accountId), this.keys.paymentEvents(accountId)], [
      'credit',
      id,
      scoreOf(Date.parse(start.startedAt)),
      this.max,
      amount,
      new Date().toISOString(),
      JSON.stringify({ id, ...start }),
      receipt?.receipt ?? '',
      receipt?.total ?? '',
    ])
  }

  /** What the incoming payment `connectionId` of `accountId` has been credited so far ('0' for none yet). */
  async received(accountId: string, connectionId: string): Promise<string> {
    const entry = await this.get(accountId, `in-${connectionId}`)
    return entry?.amount ?? '0'
  }

  async get(accountId: string, id: string): Promise<PaymentEntry | undefined> {
    const json = await this.redis.hget(this.keys.paymentEntries(accountId), id)
    return json === null ? undefined : asSeenNow(json)
  }

  /** Newest first, `limit` at most, older than `cursor` (from the page before). */
  async list(accountId: string, opts: { cursor?: string | undefined; limit: number }): Promise<PaymentPage> {
    const max = opts.cursor === undefined ? '+inf' : `(${opts.cursor}`
    const ids = (await this.redis.zrevrangebyscore(this.keys.payments(accountId), max, '-inf', 'WITHSCORES', 'LIMIT', 0, opts.limit + 1)) as string[]
    const page: Array<{ id: string; score: string }> = []
    for (let i = 0; i < ids.length; i += 2) page.push({ id: ids[i]!, score: ids[i + 1]! })
    const more = page.length > opts.limit
    if (more) page.pop()
    const data = page.length === 0 ? [] : await this.redis.hmget(this.keys.paymentEntries(accountId), ...page.map((p) => p.id))
    const payments = data.flatMap((json) => (json === null ? [] : [asSeenNow(json)]))
    return more ? { payments, cursor: page[page.length - 1]!.score } : { payments }
  }
}

/** An entry as stored; one still running past its deadline lost its worker: failed. */
function asSeenNow(json: string): PaymentEntry {
  const entry = JSON.parse(json) as PaymentEntry
  if (entry.state === 'running' && entry.deadlineAt !== undefined && Date.parse(entry.deadlineAt) < Date.now()) {
    return { ...entry, state: 'failed', error: 'interrupted: the worker that ran it stopped' }
  }
  return entry
}

/** A cursor as the farm hands it out: a sort key, digits only. */
export function isPaymentCursor(cursor: string): boolean {
  return /^[0-9]{1,20}$/.test(cursor)
}
