import type { Candidate, RouteEntry } from './routing-table.js'

/** How the farm picks among several next hops for one prefix (`routing.policy`). */
export type RoutingPolicy = 'success-rate' | 'highest-balance' | 'lowest-balance'
export const ROUTING_POLICIES: readonly RoutingPolicy[] = ['success-rate', 'highest-balance', 'lowest-balance']

/** success-rate sharpens the smoothed ratio by this power, so a hop failing half its packets gets about 1/16 of a good one's weight. */
const SHARPNESS = 4

/** What the farm knows of a next hop's account (a per-worker cache; see address-mapper.ts). */
export interface HopLiquidity {
  /** The account's balance (positive: the farm owes it). */
  readonly balance: bigint
  /** maxBalance − balance − creditsInFlight; undefined: no maxBalance, unbounded. */
  readonly liquidity: bigint | undefined
}

export interface ChoiceInput {
  readonly entry: RouteEntry
  /** The sender: never chosen. */
  readonly fromId: string
  /** The amount the next hop would receive. */
  readonly amount: bigint
  readonly now: number
  /** Uniform in [0, 1). */
  readonly random: () => number
  /** The account exists and has an outgoing URL. */
  readonly usable: (accountId: string) => boolean
  readonly liquidityOf: (accountId: string) => HopLiquidity | undefined
}

export type Choice =
  | { readonly kind: 'chosen'; readonly candidate: Candidate; readonly probe: boolean }
  /** No candidate but the sender or unusable accounts: F02. */
  | { readonly kind: 'no-route' }

function hasLiquidity(l: HopLiquidity | undefined, amount: bigint): boolean {
  return l === undefined || l.liquidity === undefined || l.liquidity >= amount
}

/**
 * Picks the next hop among the candidates of one prefix.
 *
 * 1. Excluded: the sender, accounts without outgoing URL. None left: `no-route` (F02).
 * 2. A dead candidate (DEAD_AFTER_FAILURES in a row) is skipped while another
 *    is alive; once its backoff has passed, the next packet goes to it as a
 *    probe (one per backoff). When every candidate is dead, the packet goes to
 *    the one whose probe is nearest (it gets the hop's real answer: the farm
 *    never refuses a packet only because a hop failed before; a prefix with
 *    one candidate behaves as without the mapper).
 * 3. Candidates with liquidity for the packet (by the cache) are preferred;
 *    when none has, the policy picks among all and the reservation decides
 *    (T04 if the headroom is really missing): the cache is never trusted to refuse.
 * 4. The policy:
 *    - success-rate: weighted random, weight = (Laplace-smoothed success ratio
 *      over the recent window)^4 × 1/(1 + recent T01/T02).
 *    - highest-balance / lowest-balance: candidates ranked by balance
 *      (highest / lowest first); each in turn is taken with probability
 *      1/(1 + recent T01/T02), so a hop that just failed is tried less; the last is taken anyway.
 */
export function choose(policy: RoutingPolicy, input: ChoiceInput): Choice {
  const { entry, fromId, now } = input
  const candidates = entry.candidates
  // the usual case, one candidate: no allocation
  if (candidates.length === 1) {
    const only = candidates[0]!
    if (only.accountId === fromId || !input.usable(only.accountId)) return { kind: 'no-route' }
    const probe = only.stats.probeDue(now)
    if (probe) only.stats.probeSent(now)
    return { kind: 'chosen', candidate: only, probe }
  }

  const live: Candidate[] = []
  let leastDead: Candidate | undefined
  for (const c of candidates) {
    if (c.accountId === fromId || !input.usable(c.accountId)) continue
    if (c.stats.probeDue(now)) {
      c.stats.probeSent(now)
      return { kind: 'chosen', candidate: c, probe: true }
    }
    if (!c.stats.isDead(now)) live.push(c)
    else if (leastDead === undefined || c.stats.probeAt < leastDead.stats.probeAt) leastDead = c
  }
  if (live.length === 0) return leastDead === undefined ? { kind: 'no-route' } : { kind: 'chosen', candidate: leastDead, probe: false }
  if (live.length === 1) return { kind: 'chosen', candidate: live[0]!, probe: false }

  const funded = live.filter((c) => hasLiquidity(input.liquidityOf(c.accountId), input.amount))
  const pool = funded.length > 0 ? funded : live
  if (pool.length === 1) return { kind: 'chosen', candidate: pool[0]!, probe: false }

  if (policy === 'success-rate') {
    const weights = pool.map((c) => Math.pow(c.stats.successRate(now), SHARPNESS) * c.stats.transientWeight(now))
    const total = weights.reduce((a, b) => a + b, 0)
    let r = input.random() * total
    for (let i = 0; i < pool.length; i++) {
      r -= weights[i]!
      if (r < 0) return { kind: 'chosen', candidate: pool[i]!, probe: false }
    }
    return { kind: 'chosen', candidate: pool[pool.length - 1]!, probe: false }
  }

  const sign = policy === 'highest-balance' ? -1 : 1
  const balanceOf = (c: Candidate) => input.liquidityOf(c.accountId)?.balance ?? 0n
  const ranked = [...pool].sort((a, b) => {
    const d = balanceOf(a) - balanceOf(b)
    return d === 0n ? (a.accountId < b.accountId ? -1 : 1) : d < 0n ? -sign : sign
  })
  for (let i = 0; i < ranked.length - 1; i++) {
    const c = ranked[i]!
    if (input.random() < c.stats.transientWeight(now)) return { kind: 'chosen', candidate: c, probe: false }
  }
  return { kind: 'chosen', candidate: ranked[ranked.length - 1]!, probe: false }
}
