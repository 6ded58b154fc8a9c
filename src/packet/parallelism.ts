import type { AccountConfig } from '../config/schema.js'

/**
 * An account's parallelism P, as in the seed: from the first byte of its id,
 * unless the account sets `parallelism`. The mapping is
 *
 *     P = 1 + (first byte mod 4)        so P is 1, 2, 3 or 4
 *
 * e.g. "alice" (a = 97) → 2, "bob" (98) → 3, "carol" (99) → 4, "dave" (100) → 1,
 * "0xyz" ('0' = 48) → 1. A user who wants a given trade-off picks an id (or an
 * operator sets the override). P only sizes the hot-balance lease a shard takes
 * from cold; the balance check itself is exact (see docs/ARCHITECTURE.md).
 */
export function parallelismOf(account: Pick<AccountConfig, 'id' | 'parallelism'>): number {
  if (account.parallelism !== undefined) return account.parallelism
  return 1 + (account.id.charCodeAt(0) % 4)
}
