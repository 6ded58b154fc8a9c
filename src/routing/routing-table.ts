import type { FarmConfig } from '../config/schema.js'

/**
 * Longest-prefix routing over ILP address segments: "g.a" matches "g.a" and
 * "g.a.b", never "g.ab". A lookup walks the destination's segment boundaries
 * from the longest down, so it costs O(segments) map reads whatever the size
 * of the table.
 */
export class RoutingTable {
  private readonly routes = new Map<string, string>()

  set(prefix: string, accountId: string): void {
    this.routes.set(prefix, accountId)
  }

  delete(prefix: string): void {
    this.routes.delete(prefix)
  }

  get size(): number {
    return this.routes.size
  }

  entries(): IterableIterator<[string, string]> {
    return this.routes.entries()
  }

  /** The next hop for a destination, or undefined when no prefix matches. */
  lookup(destination: string): string | undefined {
    let end = destination.length
    for (;;) {
      const hop = this.routes.get(end === destination.length ? destination : destination.slice(0, end))
      if (hop !== undefined) return hop
      end = destination.lastIndexOf('.', end - 1)
      if (end <= 0) return undefined
    }
  }
}

/** Static routes: each child's own address, account-level prefixes, then top-level routes (which win). */
export function staticRoutes(config: FarmConfig): RoutingTable {
  const table = new RoutingTable()
  for (const account of config.accounts) {
    if (account.relation === 'child' && account.outgoing) table.set(`${config.ilpAddress}.${account.id}`, account.id)
    for (const prefix of account.routes) table.set(prefix, account.id)
  }
  for (const route of config.routes) table.set(route.prefix, route.account)
  return table
}
