import type { AccountConfig, FarmConfig } from '../config/schema.js'
import { isDecimalString, UINT64_MAX } from '../util/amount.js'

/**
 * Exchange rates between accounts: exact rational arithmetic on
 * BigInt, never a float.
 *
 * A packet from account A to next hop B carries
 *
 *     out = floor(in × num / den)
 *     num / den = (price_A / price_B) × 10^(scale_B − scale_A) × (1 − spread)
 *
 * where the prices come from `rates.prices` (asset code → price in a common
 * unit) and the spread from `rates.spread`. Between accounts of the same asset
 * code the price ratio is exactly 1 and no spread is taken (only the scales
 * convert). Between different codes without a price for both there is no
 * rate: the packet is refused (F02). Rounding is always down on the outgoing
 * side (and up on the source side of a quote), so the farm never pays out
 * more than it took in.
 */

/** A reduced positive fraction: next-hop base units per incoming base unit. */
export interface Rate {
  readonly num: bigint
  readonly den: bigint
  /** num === den: amounts pass unchanged (same code and scale). */
  readonly identity: boolean
}

export const IDENTITY_RATE: Rate = Object.freeze({ num: 1n, den: 1n, identity: true })

/** "1.08" → 108/100 (not reduced). Throws for anything but a plain decimal string. */
export function parseDecimal(s: string): { num: bigint; den: bigint } {
  if (!isDecimalString(s)) throw new Error(`not a decimal string: ${s}`)
  const dot = s.indexOf('.')
  if (dot < 0) return { num: BigInt(s), den: 1n }
  const frac = s.slice(dot + 1)
  return { num: BigInt(s.slice(0, dot) + frac), den: 10n ** BigInt(frac.length) }
}

function gcd(a: bigint, b: bigint): bigint {
  while (b !== 0n) [a, b] = [b, a % b]
  return a
}

export function makeRate(num: bigint, den: bigint): Rate {
  if (num <= 0n || den <= 0n) throw new Error('a rate must be positive')
  const g = gcd(num, den)
  const n = num / g
  const d = den / g
  return n === 1n && d === 1n ? IDENTITY_RATE : { num: n, den: d, identity: false }
}

/** floor(amount × rate): the next hop's amount. */
export function convertDown(amount: bigint, rate: Rate): bigint {
  return rate.identity ? amount : (amount * rate.num) / rate.den
}

/** floor(amount ÷ rate): an amount in next-hop units back in incoming units, rounded down (F08's maximum). */
export function convertBackDown(amount: bigint, rate: Rate): bigint {
  return rate.identity ? amount : (amount * rate.den) / rate.num
}

/** The smallest incoming amount s with floor(s × rate) ≥ amount: ceil(amount ÷ rate). */
export function sourceAmountFor(amount: bigint, rate: Rate): bigint {
  return rate.identity ? amount : (amount * rate.den + rate.num - 1n) / rate.num
}

/** The rate as a decimal string, rounded down to `places` decimals ("0.499", "1080000"). */
export function rateToString(rate: Rate, places = 18): string {
  const whole = rate.num / rate.den
  let rest = rate.num % rate.den
  if (rest === 0n) return whole.toString()
  let digits = ''
  for (let i = 0; i < places && rest !== 0n; i++) {
    rest *= 10n
    digits += (rest / rate.den).toString()
    rest %= rate.den
  }
  digits = digits.replace(/0+$/, '')
  return digits === '' ? whole.toString() : `${whole}.${digits}`
}

interface Asset {
  readonly code: string
  readonly scale: number
}

/**
 * The rate of every pair of assets (code, scale) the accounts use, computed
 * once at start: the packet path does one Map read and two array reads.
 */
export class Rates {
  readonly spread: string
  private readonly prices: ReadonlyMap<string, { num: bigint; den: bigint }>
  private readonly keep: { num: bigint; den: bigint }
  private readonly assets: Asset[] = []
  private readonly assetIndex = new Map<string, number>()
  /** Accounts come and go at runtime: each account object is mapped to its asset once. */
  private readonly byAccount = new WeakMap<AccountConfig, number>()
  /** matrix[from][to], filled on first use; null: no rate between those codes. */
  private readonly matrix: Array<Array<Rate | null | undefined>> = []

  constructor(config: Pick<FarmConfig, 'accounts' | 'rates'>) {
    this.spread = config.rates.spread
    this.prices = new Map(Object.entries(config.rates.prices).map(([code, price]) => [code, parseDecimal(price)]))
    const spread = parseDecimal(config.rates.spread)
    this.keep = { num: spread.den - spread.num, den: spread.den } // 1 − spread
    for (const account of config.accounts) this.assetOf(account)
  }

  /** The rate from `from`'s asset to `to`'s; undefined when their codes differ and one has no price. */
  between(from: AccountConfig, to: AccountConfig): Rate | undefined {
    const i = this.assetOf(from)
    const j = this.assetOf(to)
    const row = this.matrix[i]!
    let rate = row[j]
    if (rate === undefined) {
      rate = rateBetween(this.assets[i]!, this.assets[j]!, this.prices, this.keep) ?? null
      row[j] = rate
    }
    return rate ?? undefined
  }

  private assetOf(account: AccountConfig): number {
    let i = this.byAccount.get(account)
    if (i !== undefined) return i
    const key = `${account.assetCode}\u0000${account.assetScale}`
    i = this.assetIndex.get(key)
    if (i === undefined) {
      i = this.assets.length
      this.assets.push({ code: account.assetCode, scale: account.assetScale })
      this.assetIndex.set(key, i)
      this.matrix.push([])
    }
    this.byAccount.set(account, i)
    return i
  }
}

function rateBetween(
  a: Asset,
  b: Asset,
  prices: ReadonlyMap<string, { num: bigint; den: bigint }>,
  keep: { num: bigint; den: bigint },
): Rate | undefined {
  let num = 1n
  let den = 1n
  if (a.code !== b.code) {
    const pa = prices.get(a.code)
    const pb = prices.get(b.code)
    if (pa === undefined || pb === undefined) return undefined
    // (pa.num / pa.den) / (pb.num / pb.den) × (1 − spread)
    num = pa.num * pb.den * keep.num
    den = pa.den * pb.num * keep.den
  }
  const shift = b.scale - a.scale
  if (shift > 0) num *= 10n ** BigInt(shift)
  else if (shift < 0) den *= 10n ** BigInt(-shift)
  return makeRate(num, den)
}

/** Why a conversion cannot be made; `code` is the ILP error code a packet gets. */
export type ConversionFailure =
  | { readonly code: 'F02'; readonly message: string }
  | { readonly code: 'R01'; readonly message: string }
  | { readonly code: 'F08'; readonly message: string; readonly received: bigint; readonly maximum: bigint }

/**
 * The next hop's amount for an incoming amount, checked against the next
 * hop's maxPacketAmount (and UInt64). On F08 `received` is the incoming amount
 * and `maximum` the next hop's limit converted back to incoming units,
 * rounded down (what ilp-connector reports), so a sender that scales its
 * packets by maximum/received stays below the limit.
 */
export function convertForHop(
  inAmount: bigint,
  rate: Rate | undefined,
  from: AccountConfig,
  hop: AccountConfig,
): { ok: true; amount: bigint } | { ok: false; failure: ConversionFailure } {
  if (rate === undefined) {
    return { ok: false, failure: { code: 'F02', message: `no exchange rate from ${from.assetCode} to ${hop.assetCode}` } }
  }
  const out = convertDown(inAmount, rate)
  const max = hop.maxPacketAmount === undefined ? UINT64_MAX : BigInt(hop.maxPacketAmount)
  if (out > max) {
    const back = convertBackDown(max, rate)
    return {
      ok: false,
      failure: {
        code: 'F08',
        message: 'packet amount exceeds the next hop maximum',
        received: inAmount,
        maximum: back > UINT64_MAX ? UINT64_MAX : back,
      },
    }
  }
  if (out === 0n && inAmount > 0n) {
    return { ok: false, failure: { code: 'R01', message: 'insufficient source amount: the converted amount rounds to zero' } }
  }
  return { ok: true, amount: out }
}
