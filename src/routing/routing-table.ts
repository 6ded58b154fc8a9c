import type { FarmConfig } from '../config/schema.js'
import { CandidateStats } from './stats.js'

/**
 * Where a candidate came from: `static` (config or admin API); `learned` (CCP
 * route announcements); `address` (a child, routed by its own address, in no table).
 */
export type RouteSource = 'static' | 'learned' | 'address'

/** What Redis stores about one candidate of a prefix (`{prefix}routes`, see route-store.ts). */
export interface CandidateInfo {
  readonly source: RouteSource
  /** Who added a static candidate: the config (re-applied at every start) or the admin API. */
  readonly addedBy?: 'config' | 'admin'
  /** Learned routes (CCP): the path as the peer announced it and when the route expires unless refreshed. */
  readonly path?: readonly string[]
  readonly expiresAtMs?: number
  /** Learned routes: the 32-byte auth the peer announced (hex); the farm passes SHA-256 of it on. */
  readonly auth?: string
}

/** One next hop for a prefix, with the counters the policies read. */
export interface Candidate {
  readonly accountId: string
  readonly info: CandidateInfo
  /** Per (prefix, account); survives table reloads. */
  readonly stats: CandidateStats
}

/** A prefix and its candidate next hops (sorted by account id). */
export interface RouteEntry {
  readonly prefix: string
  readonly candidates: readonly Candidate[]
}

/**
 * Longest-prefix routing over ILP address segments: "g.a" matches "g.a" and
 * "g.a.b", never "g.ab". A lookup walks the destination's segment boundaries
 * from the longest down, so it costs O(segments) map reads whatever the size
 * of the table. Each prefix has one or more candidates; the stats objects are
 * kept per (prefix, account) across reloads, so a route change does not reset
 * what the farm learned about a hop.
 */
export class RoutingTable {
  private readonly routes = new Map<string, RouteEntry>()
  private readonly stats = new Map<string, CandidateStats>()

  /** Replaces the candidates of `prefix` (none: the prefix is removed). */
  set(prefix: string, candidates: ReadonlyMap<string, CandidateInfo>): void {
    if (candidates.size === 0) {
      this.delete(prefix)
      return
    }
    for (const old of this.routes.get(prefix)?.candidates ?? []) {
      if (!candidates.has(old.accountId)) this.stats.delete(statsKey(prefix, old.accountId))
    }
    const list: Candidate[] = []
    for (const accountId of [...candidates.keys()].sort()) {
      list.push({ accountId, info: candidates.get(accountId)!, stats: this.statsOf(prefix, accountId) })
    }
    this.routes.set(prefix, { prefix, candidates: list })
  }

  /** Adds (or replaces) one candidate of `prefix`. */
  add(prefix: string, accountId: string, info: CandidateInfo = { source: 'static', addedBy: 'config' }): void {
    const next = new Map<string, CandidateInfo>((this.routes.get(prefix)?.candidates ?? []).map((c) => [c.accountId, c.info]))
    next.set(accountId, info)
    this.set(prefix, next)
  }

  delete(prefix: string): void {
    const entry = this.routes.get(prefix)
    if (!entry) return
    this.routes.delete(prefix)
    for (const c of entry.candidates) this.stats.delete(statsKey(prefix, c.accountId))
  }

  /** Replaces the whole table, keeping the stats of the candidates that stay. */
  replaceAll(next: ReadonlyMap<string, ReadonlyMap<string, CandidateInfo>>): void {
    for (const prefix of [...this.routes.keys()]) if (!next.has(prefix)) this.delete(prefix)
    for (const [prefix, candidates] of next) this.set(prefix, candidates)
  }

  get size(): number {
    return this.routes.size
  }

  entries(): IterableIterator<RouteEntry> {
    return this.routes.values()
  }

  get(prefix: string): RouteEntry | undefined {
    return this.routes.get(prefix)
  }

  /** The entry of the longest prefix matching `destination` on a segment boundary, or undefined. */
  lookup(destination: string): RouteEntry | undefined {
    let end = destination.length
    for (;;) {
      const entry = this.routes.get(end === destination.length ? destination : destination.slice(0, end))
      if (entry !== undefined) return entry
      end = destination.lastIndexOf('.', end - 1)
      if (end <= 0) return undefined
    }
  }

  /** Every candidate's stats object, keyed `<prefix>|<account>`. */
  allStats(): IterableIterator<[string, CandidateStats]> {
    return this.stats.entries()
  }

  private statsOf(prefix: string, accountId: string): CandidateStats {
    const key = statsKey(prefix, accountId)
    let stats = this.stats.get(key)
    if (!stats) {
      stats = new CandidateStats(key)
      this.stats.set(key, stats)
    }
    return stats
  }
}

/** `<prefix>|<account>`: neither contains `|`. */
export function statsKey(prefix: string, accountId: string): string {
  return `${prefix}|${accountId}`
}

/**
 * The static routes of a config, prefix → account ids: each account's
 * `routes`, and the top-level `routes`. Several accounts for one prefix are
 * several candidates. Children need none: they are routed by their address.
 */
export function configRoutes(config: FarmConfig): Map<string, Set<string>> {
  const routes = new Map<string, Set<string>>()
  const add = (prefix: string, accountId: string) => {
    let set = routes.get(prefix)
    if (!set) routes.set(prefix, (set = new Set()))
    set.add(accountId)
  }
  for (const account of config.accounts) {
    for (const prefix of account.routes) add(prefix, account.id)
  }
  for (const route of config.routes) add(route.prefix, route.account)
  return routes
}

/** An in-memory table of the config's static routes (no Redis): tests, tools. */
export function staticRoutes(config: FarmConfig): RoutingTable {
  const table = new RoutingTable()
  for (const [prefix, accounts] of configRoutes(config)) {
    for (const accountId of accounts) table.add(prefix, accountId)
  }
  return table
}
