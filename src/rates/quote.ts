import { canReceive } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import type { PacketServices } from '../packet/context.js'
import type { Candidate } from '../routing/routing-table.js'
import { UINT64_MAX } from '../util/amount.js'
import { convertBackDown, convertDown, type Rate, rateToString, sourceAmountFor } from './rates.js'

/**
 * Quotes ("quoteRequest: answer from addressMapper"): for a sender, a
 * destination and either amount, the other amount and the next hop, from the
 * address mapper's table and the rate along the chosen hop.
 *
 * The farm knows one hop: `destinationAmount` is what the next hop receives
 * (further connectors may convert again). A quote is made for one packet of
 * that amount: a payment split into several packets rounds each one down.
 */

export interface QuoteRequest {
  readonly from: AccountConfig
  readonly destination: string
  /** Exactly one of the two: a UInt64 decimal string. */
  readonly sourceAmount?: string
  readonly destinationAmount?: string
}

export interface Quote {
  /** In the sender's base units. */
  sourceAmount: string
  /** In the next hop's base units: what a packet of sourceAmount delivers to it (at least the requested amount). */
  destinationAmount: string
  nextHop: string
  /** The route prefix that matched. */
  prefix: string
  sourceAsset: { code: string; scale: number }
  destinationAsset: { code: string; scale: number }
  /** Next-hop base units per source base unit, spread included, rounded down to 18 decimals. */
  rate: string
  /** The exact rate. */
  rateFraction: { numerator: string; denominator: string }
  /** The policy that ranked the candidates (`routing.policy`). */
  policy: string
  /**
   * The next hop's headroom read now (maxBalance − balance − creditsInFlight;
   * null: no maxBalance), what the sender may still send (balance −
   * minBalance, in its units, read now), and whether both cover
   * the amounts: false means a packet would get T04.
   */
  liquidity: { headroom: string | null; senderAvailable: string; sufficient: boolean }
  /** The largest source amount one packet may carry on this hop (the sender's and the hop's limits, in source units); null: only UInt64. */
  maxPacketAmount: string | null
}

const text = { type: 'string' }
const nullableText = { type: ['string', 'null'] }
const asset = { type: 'object', properties: { code: text, scale: { type: 'integer' } } }

/**
 * A Quote as a JSON Schema: the answer of POST /admin/quote and of ilp_quote, so both documents (OpenAPI,
 * OpenRPC) describe it alike. Plain types only: fastify serializes the admin answer with it, and drops
 * what a schema does not declare.
 */
export const QUOTE_SCHEMA = {
  type: 'object',
  properties: {
    sourceAmount: { ...text, description: "in the sender's base units" },
    destinationAmount: { ...text, description: "in the next hop's base units: what a packet of sourceAmount delivers to it" },
    nextHop: text,
    prefix: { ...text, description: 'the route prefix that matched' },
    sourceAsset: asset,
    destinationAsset: asset,
    rate: { ...text, description: 'next-hop base units per source base unit, spread included, rounded down to 18 decimals' },
    rateFraction: { type: 'object', properties: { numerator: text, denominator: text } },
    policy: text,
    liquidity: {
      type: 'object',
      properties: { headroom: { ...nullableText, description: 'null: no maxBalance' }, senderAvailable: text, sufficient: { type: 'boolean', description: 'false: a packet would get T04' } },
    },
    maxPacketAmount: { ...nullableText, description: 'the largest source amount one packet may carry on this hop; null: only UInt64' },
  },
  // a field added to Quote reaches the admin answer even before it is described here
  additionalProperties: true,
} as const

/** A quote the farm cannot give: `code` is the ILP code a packet would get (F02, R01, F08). */
export class QuoteError extends Error {
  constructor(
    readonly code: 'F02' | 'R01' | 'F08',
    message: string,
  ) {
    super(message)
    this.name = 'QuoteError'
  }
}

type QuoteServices = Pick<PacketServices, 'routes' | 'rates' | 'accounts' | 'ledger'>

interface Option {
  candidate: Candidate
  hop: AccountConfig
  rate: Rate
  source: bigint
  out: bigint
  headroom: bigint | undefined
  /** balance + credits in flight (what the balance policies rank by). */
  balance: bigint
}

/**
 * The candidates the packet path could choose (not the sender, an outgoing
 * URL, alive unless all are dead, a rate), the amounts along each, each one's
 * liquidity read now; then the address mapper's rules without its randomness
 * or side effects (no probe consumed, nothing counted as sent): candidates
 * whose headroom covers the amount first, then the best by the policy
 * (success-rate: the highest weight; highest/lowest-balance: the first in
 * rank). So the quote names the hop a packet most likely takes, and says
 * when even that one lacks liquidity.
 */
export async function quote(req: QuoteRequest, services: QuoteServices): Promise<Quote> {
  const { from, destination } = req
  if (destination.startsWith('peer.')) throw new QuoteError('F02', `no route to ${destination}: peer.* is never forwarded`)
  const entry = services.routes.lookup(destination)
  if (entry === undefined) throw new QuoteError('F02', `no route to ${destination}`)
  const now = Date.now()
  const hops = new Map<string, AccountConfig>()
  for (const c of entry.candidates) {
    const loaded = c.accountId === from.id ? undefined : await services.accounts.load(c.accountId)
    if (loaded !== undefined && canReceive(loaded) && (c.info.source !== 'address' || loaded.account.relation === 'child')) hops.set(c.accountId, loaded.account)
  }
  let pool = entry.candidates.filter((c) => hops.has(c.accountId))
  if (pool.length === 0) {
    const back = entry.candidates.some((c) => c.accountId === from.id)
    throw new QuoteError('F02', back ? `no route to ${destination}: it leads back to the sender` : `no route to ${destination}`)
  }
  const alive = pool.filter((c) => !c.stats.isDead(now))
  if (alive.length > 0) pool = alive

  let firstFailure: QuoteError | undefined
  const priced: Array<Omit<Option, 'headroom' | 'balance'>> = []
  for (const candidate of pool) {
    const hop = hops.get(candidate.accountId)!
    const rate = services.rates.between(from, hop)
    const amounts = amountsFor(req, rate, from, hop)
    if (amounts instanceof QuoteError) {
      firstFailure ??= amounts
      continue
    }
    priced.push({ candidate, hop, rate: rate!, ...amounts })
  }
  if (priced.length === 0) throw firstFailure!

  // the sender's own side of T04: the prepare may not take its balance below minBalance
  const senderAvailable = services.ledger.balance(from.id).then((b) => BigInt(b.balance) - BigInt(from.minBalance))
  const options: Option[] = await Promise.all(
    priced.map(async (p) => {
      const b = await services.ledger.balance(p.hop.id)
      const balance = BigInt(b.balance)
      const inFlight = BigInt(b.creditsInFlight)
      const headroom = p.hop.maxBalance === undefined ? undefined : BigInt(p.hop.maxBalance) - balance - inFlight
      return { ...p, headroom, balance: balance + inFlight }
    }),
  )
  const covers = (o: Option) => o.headroom === undefined || o.headroom >= o.out
  const funded = options.filter(covers)
  const chosen = best(funded.length > 0 ? funded : options, services.routes.policy, now)
  const available = await senderAvailable
  const senderCovers = available >= chosen.source

  const fromMax = from.maxPacketAmount === undefined ? undefined : BigInt(from.maxPacketAmount)
  const hopMax = chosen.hop.maxPacketAmount === undefined ? undefined : convertBackDown(BigInt(chosen.hop.maxPacketAmount), chosen.rate)
  const limits = [fromMax, hopMax].filter((x): x is bigint => x !== undefined)
  const maxPacket = limits.length === 0 ? undefined : limits.reduce((a, b) => (a < b ? a : b))

  return {
    sourceAmount: chosen.source.toString(),
    destinationAmount: chosen.out.toString(),
    nextHop: chosen.hop.id,
    prefix: entry.prefix,
    sourceAsset: { code: from.assetCode, scale: from.assetScale },
    destinationAsset: { code: chosen.hop.assetCode, scale: chosen.hop.assetScale },
    rate: rateToString(chosen.rate),
    rateFraction: { numerator: chosen.rate.num.toString(), denominator: chosen.rate.den.toString() },
    policy: services.routes.policy,
    liquidity: {
      headroom: chosen.headroom === undefined ? null : chosen.headroom.toString(),
      senderAvailable: available.toString(),
      sufficient: covers(chosen) && senderCovers,
    },
    maxPacketAmount: maxPacket === undefined ? null : (maxPacket > UINT64_MAX ? UINT64_MAX : maxPacket).toString(),
  }
}

/** Both amounts along one hop, or why a packet would be refused there (the packet path's own checks). */
function amountsFor(req: QuoteRequest, rate: Rate | undefined, from: AccountConfig, hop: AccountConfig): { source: bigint; out: bigint } | QuoteError {
  if (rate === undefined) return new QuoteError('F02', `no exchange rate from ${from.assetCode} to ${hop.assetCode}`)
  let source: bigint
  if (req.sourceAmount !== undefined) {
    source = BigInt(req.sourceAmount)
  } else {
    // the smallest source amount whose conversion (rounded down) reaches the destination amount
    source = sourceAmountFor(BigInt(req.destinationAmount!), rate)
    if (source > UINT64_MAX) return new QuoteError('F08', 'the source amount for this destination amount would exceed the largest ILP amount (UInt64)')
  }
  // the packet limit is not applied here (a quote may be for a payment of several packets; see maxPacketAmount), only UInt64
  const out = convertDown(source, rate)
  if (out > UINT64_MAX) return new QuoteError('F08', 'the destination amount would exceed the largest ILP amount (UInt64)')
  if (out === 0n && source > 0n) return new QuoteError('R01', 'insufficient source amount: the converted amount rounds to zero')
  return { source, out }
}

function best(options: Option[], policy: string, now: number): Option {
  const byId = (a: Option, b: Option) => (a.hop.id < b.hop.id ? -1 : a.hop.id > b.hop.id ? 1 : 0)
  const sorted = [...options].sort((a, b) => {
    if (policy === 'success-rate') {
      const d = weight(b.candidate, now) - weight(a.candidate, now)
      return d !== 0 ? d : byId(a, b)
    }
    const d = a.balance - b.balance
    if (d === 0n) return byId(a, b)
    const ascending = d < 0n ? -1 : 1
    return policy === 'highest-balance' ? -ascending : ascending
  })
  return sorted[0]!
}

function weight(c: Candidate, now: number): number {
  return Math.pow(c.stats.successRate(now), 4) * c.stats.transientWeight(now)
}
