/** Reading GET /admin/accounts a page at a time: one page (`accounts list --limit`, `inspect`) or all of them. */
import type { AdminClient } from './admin-client.js'
import type { AccountsPage, AccountView } from './views.js'

/** The farm's largest page: the fewest round trips for a full listing. */
export const MAX_PAGE = 1_000

/** One page from `cursor` on (the start without one); `limit` unset: the farm's default page. */
export async function readAccountsPage(client: AdminClient, opts: { cursor?: string; limit?: number } = {}): Promise<AccountsPage> {
  const query = new URLSearchParams()
  if (opts.cursor !== undefined) query.set('cursor', opts.cursor)
  if (opts.limit !== undefined) query.set('limit', String(opts.limit))
  const qs = query.toString()
  const answer = await client.get<AccountsPage | AccountView[]>(`/admin/accounts${qs === '' ? '' : `?${qs}`}`)
  // A farm older than this CLI answers every account as a bare array, whatever the query: that is the one page.
  return Array.isArray(answer) ? { accounts: answer, nextCursor: null } : answer
}

/** Every account, following nextCursor page after page; a page that ends where it began stops the walk. */
export async function readAllAccounts(client: AdminClient): Promise<AccountView[]> {
  const all: AccountView[] = []
  let cursor: string | undefined
  for (;;) {
    const page = await readAccountsPage(client, { ...(cursor === undefined ? {} : { cursor }), limit: MAX_PAGE })
    all.push(...page.accounts)
    if (page.nextCursor === null || page.nextCursor === cursor) return all
    cursor = page.nextCursor
  }
}
