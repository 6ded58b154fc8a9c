import { type FarmCommand, type FarmContext, positionals, print, printJson, stringOption, UsageError, withArgs } from '../command.js'
import { plural, table } from '../format.js'
import type { CandidateView, RouteChange, RoutesView } from '../views.js'

const USAGE = `Usage:
  ilp-farm routes                          the routing table (GET /admin/routes)
  ilp-farm routes add PREFIX ACCOUNT       adds a static next hop for PREFIX (PUT /admin/routes/PREFIX)
  ilp-farm routes remove PREFIX [--account ACCOUNT]
                                           removes that static next hop, or every static one of PREFIX

The table lists each prefix with its candidates (next hops): where the route comes
from, the hop's liquidity (maxBalance − balance − credits in flight; "unbounded"
without maxBalance), farm-wide fulfilled/failed packets, its score (what the
success-rate policy ranks by: (fulfilled + 1) / (all + 2) over the last minutes, so
0.50 with no packets and never quite 1 or 0: not a percentage of the counts beside it),
and its health ("dead" after 5 failures in a row, probed again after a backoff).
`

export const routesCommand: FarmCommand = {
  name: 'routes',
  summary: ['routes [add|remove]', 'the routing table; add or remove a static next hop'],
  scopes: { list: ['read'], add: ['routes'], remove: ['routes'] },
  usage: USAGE,
  options: { account: { type: 'string' } },
  async run(ctx) {
    const [sub, ...rest] = ctx.args
    const subCtx = withArgs(ctx, rest)
    if (sub !== 'remove' && stringOption(ctx.values, 'account') !== undefined) {
      throw new UsageError('--account belongs to "routes remove"', 'routes')
    }
    switch (sub) {
      case undefined:
      case 'list':
        positionals(subCtx, [], 'routes')
        return list(ctx)
      case 'add':
        return add(subCtx)
      case 'remove':
        return remove(subCtx)
      default:
        throw new UsageError(`unknown routes subcommand "${sub}" (list, add, remove)`, 'routes')
    }
  },
}

async function list(ctx: FarmContext): Promise<number> {
  const view = await ctx.client.get<RoutesView>('/admin/routes')
  if (ctx.json) {
    printJson(view)
    return 0
  }
  print(`routing policy: ${view.policy}`)
  print(`children: ${view.ilpAddress}.<id> goes to child <id> by its address (no table entry)`)
  print(routesTable(view))
  print(plural(view.routes.length, 'prefix', 'prefixes'))
  return 0
}

/** One row per candidate; the prefix only on its first. For `routes` and `inspect`. */
export function routesTable(view: RoutesView): string {
  const rows = view.routes.flatMap((r) =>
    r.candidates.length === 0
      ? [[r.prefix, '(none)', '', '', '', '', '', '', '']]
      : r.candidates.map((c, i) => [i === 0 ? r.prefix : '', ...candidateCells(c)]),
  )
  return table(
    [
      'prefix',
      'next hop',
      'source',
      { header: 'liquidity', align: 'right' },
      { header: 'balance', align: 'right' },
      { header: 'fulfilled', align: 'right' },
      { header: 'failed', align: 'right' },
      { header: 'score', align: 'right' },
      'state',
    ],
    rows,
  )
}

/**
 * An account users made themselves (a redeemed ticket, sign-up) is named so
 * beside its id: a static route to it says `static (admin)` because it came
 * through the admin API, which does not make it an operator's account.
 */
function nextHopCell(c: CandidateView): string {
  return c.origin === 'signup' || c.origin === 'ticket' ? `${c.account} (${c.origin} account)` : c.account
}

function candidateCells(c: CandidateView): string[] {
  return [
    nextHopCell(c),
    c.addedBy ? `${c.source} (${c.addedBy})` : c.source,
    c.liquidity ?? 'unbounded',
    c.balance,
    String(c.successes),
    String(c.failures),
    c.successRate.toFixed(2),
    candidateState(c),
  ]
}

export function candidateState(c: CandidateView): string {
  if (c.dead) return 'DEAD'
  if (c.consecutiveFailures > 0) return `${plural(c.consecutiveFailures, 'failure')} in a row`
  return 'ok'
}

async function add(ctx: FarmContext): Promise<number> {
  const [prefix, account] = positionals(ctx, ['prefix', 'account'], 'routes') as [string, string]
  const change = await ctx.client.put<RouteChange>(`/admin/routes/${encodeURIComponent(prefix)}`, { account })
  if (ctx.json) {
    printJson(change)
    return 0
  }
  print(`${change.prefix} → ${account} added; candidates now: ${change.candidates.join(', ')}`)
  return 0
}

async function remove(ctx: FarmContext): Promise<number> {
  const [prefix] = positionals(ctx, ['prefix'], 'routes') as [string]
  const account = stringOption(ctx.values, 'account')
  const query = account === undefined ? '' : `?account=${encodeURIComponent(account)}`
  const change = await ctx.client.delete<RouteChange>(`/admin/routes/${encodeURIComponent(prefix)}${query}`)
  if (ctx.json) {
    printJson(change)
    return 0
  }
  const left = change.candidates.length === 0 ? 'no candidates left' : `candidates now: ${change.candidates.join(', ')}`
  print(`${account === undefined ? `static routes of ${change.prefix}` : `${change.prefix} → ${account}`} removed; ${left}`)
  return 0
}
