/**
 * The farm-wide metrics in Redis: one hash, `<prefix>metrics`, whose fields
 * name a series and whose values only ever grow (every worker adds its
 * deltas). Fields are `|`-separated: account ids are ILP address segments and
 * command names are letters, so neither contains `|`.
 *
 *   packets|<account>|fulfilled            count
 *   packets|<account>|rejected|<code>      count
 *   amount|<account>|<outcome>             sum of prepare amounts (float)
 *   packet_seconds|<outcome>|<le>          count in that bucket (not cumulative)
 *   packet_seconds_sum|<outcome>           sum of durations (float)
 *   redis_seconds|<command>|<le>           count in that bucket
 *   redis_seconds_sum|<command>            sum of durations (float)
 */

/**
 * The `account` of packets from accounts without series of their own (not a
 * parent, peer or route carrier, not opted in with `metrics: true`): no
 * account id looks like it, and farm-wide totals stay exact.
 */
export const OTHER_ACCOUNTS = '(other)'

export type Outcome = 'fulfilled' | 'rejected'
export const OUTCOMES: readonly Outcome[] = ['fulfilled', 'rejected']

/** Upper bounds of the packet path's latency buckets, in seconds. */
export const PACKET_BUCKETS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
/** Upper bounds of the Redis call latency buckets, in seconds. */
export const REDIS_BUCKETS: readonly number[] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

export const fields = {
  fulfilled: (account: string) => `packets|${account}|fulfilled`,
  rejected: (account: string, code: string) => `packets|${account}|rejected|${code}`,
  amount: (account: string, outcome: Outcome) => `amount|${account}|${outcome}`,
  packetSeconds: (outcome: Outcome) => `packet_seconds|${outcome}`,
  packetSecondsSum: (outcome: Outcome) => `packet_seconds_sum|${outcome}`,
  redisSeconds: (command: string) => `redis_seconds|${command}`,
  redisSecondsSum: (command: string) => `redis_seconds_sum|${command}`,
}

/**
 * How many ids the recently-active set keeps (Keys.activeAccounts: the
 * accounts without series of their own that recently sent packets, id → when,
 * trimmed at every flush; the dashboard shows the newest of them).
 */
export const ACTIVE_ACCOUNTS_KEPT = 1_000

/** One histogram series as stored: count per upper bound (Infinity for +Inf), and the sum. */
export interface StoredHistogram {
  readonly buckets: Map<number, number>
  sum: number
}

export interface PacketCount {
  readonly account: string
  readonly outcome: Outcome
  /** Rejected packets only. */
  readonly code?: string
  readonly value: number
}

/** The farm-wide counters, as read back from the hash. */
export interface FarmTotals {
  readonly packets: PacketCount[]
  readonly amounts: Array<{ account: string; outcome: Outcome; value: number }>
  readonly packetSeconds: Map<string, StoredHistogram>
  readonly redisSeconds: Map<string, StoredHistogram>
}

/** A bucket's upper bound as stored: a number, or `+Inf`. */
const parseLe = (le: string): number => (le === '+Inf' ? Infinity : Number(le))

const isOutcome = (s: string | undefined): s is Outcome => s === 'fulfilled' || s === 'rejected'

function histogramOf(map: Map<string, StoredHistogram>, key: string): StoredHistogram {
  let h = map.get(key)
  if (!h) map.set(key, (h = { buckets: new Map(), sum: 0 }))
  return h
}

/** Parses HGETALL of the metrics hash; fields it does not know (a newer version's) are skipped. */
export function parseTotals(hash: Record<string, string>): FarmTotals {
  const totals: FarmTotals = { packets: [], amounts: [], packetSeconds: new Map(), redisSeconds: new Map() }
  for (const [field, raw] of Object.entries(hash)) {
    const value = Number(raw)
    if (!Number.isFinite(value)) continue
    const [family, a = '', b, c] = field.split('|')
    if (family === 'packets' && b === 'fulfilled') totals.packets.push({ account: a, outcome: b, value })
    else if (family === 'packets' && b === 'rejected' && c !== undefined) totals.packets.push({ account: a, outcome: b, code: c, value })
    else if (family === 'amount' && isOutcome(b)) totals.amounts.push({ account: a, outcome: b, value })
    else if (family === 'packet_seconds' && b !== undefined) histogramOf(totals.packetSeconds, a).buckets.set(parseLe(b), value)
    else if (family === 'packet_seconds_sum') histogramOf(totals.packetSeconds, a).sum = value
    else if (family === 'redis_seconds' && b !== undefined) histogramOf(totals.redisSeconds, a).buckets.set(parseLe(b), value)
    else if (family === 'redis_seconds_sum') histogramOf(totals.redisSeconds, a).sum = value
  }
  return totals
}
