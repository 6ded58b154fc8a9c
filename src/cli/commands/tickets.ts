import { type FarmCommand, type FarmContext, listOption, print, printJson, stringOption, UsageError, withArgs, positionals } from '../command.js'
import { fields } from '../format.js'

const USAGE = `Usage:
  ilp-farm tickets issue --asset-code CODE --asset-scale N [--relation child|peer|parent]
                         [--min-balance N] [--max-balance N] [--max-packet-amount N]
                         [--id ID] [--callback-url PREFIX]... [--expires-in DURATION]

issue    an invitation ticket (POST /admin/tickets): one-time and expiring; the user redeems it
         over JSON-RPC (ilp_redeemTicket, or \`ilp-farm-client redeem\`) and gets an account with
         these limits and its token. The ticket is printed once; the farm keeps only its SHA-256.

Options of issue:
  --asset-code CODE, --asset-scale N   the account's asset
  --relation R               child (default), peer or parent
  --min-balance N            lowest balance (negative: credit the farm extends); default 0
  --max-balance N            highest balance; default: no limit
  --max-packet-amount N      larger packets are refused (F08)
  --id ID                    the account id the ticket creates; default: the user picks or one is made
  --callback-url PREFIX      a URL prefix the account may register as its RPC URL (ilp_setRpcUrl), such
                             as "https://tunnel.example.com/"; repeat for more. Given, these replace the
                             farm's users.rpcUrlPrefixes for this account; else it gets those
  --expires-in DURATION      e.g. 90s, 30m, 24h, 7d (default 24h, at most 30d)
`

const OPTIONS = {
  'asset-code': { type: 'string' },
  'asset-scale': { type: 'string' },
  relation: { type: 'string' },
  'min-balance': { type: 'string' },
  'max-balance': { type: 'string' },
  'max-packet-amount': { type: 'string' },
  id: { type: 'string' },
  'callback-url': { type: 'string', multiple: true },
  'expires-in': { type: 'string' },
} as const

const UNIT_MS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "90s", "30m", "24h", "7d" → milliseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)([smhd])$/.exec(text)
  if (!m) throw new UsageError(`--expires-in must be a number and a unit, such as 90s, 30m, 24h or 7d (got "${text}")`, 'tickets')
  return Number(m[1]) * UNIT_MS[m[2]!]!
}

interface IssuedTicket {
  ticket: string
  expiresAt: string
}

export const ticketsCommand: FarmCommand = {
  name: 'tickets',
  summary: ['tickets issue', 'an invitation ticket for a new account (one-time, expiring)'],
  scopes: { issue: ['accounts'] },
  usage: USAGE,
  options: OPTIONS,
  async run(ctx) {
    const [sub, ...rest] = ctx.args
    if (sub !== 'issue') throw new UsageError(`unknown tickets subcommand "${sub ?? ''}" (issue)`, 'tickets')
    return issue(withArgs(ctx, rest))
  },
}

async function issue(ctx: FarmContext): Promise<number> {
  positionals(ctx, [], 'tickets')
  const option = (name: string) => stringOption(ctx.values, name)
  const assetCode = option('asset-code')
  const assetScale = option('asset-scale')
  if (!assetCode || !assetScale) throw new UsageError('tickets issue needs --asset-code and --asset-scale', 'tickets')
  if (!/^\d+$/.test(assetScale)) throw new UsageError('--asset-scale must be a whole number', 'tickets')
  const account: Record<string, unknown> = { assetCode, assetScale: Number(assetScale), relation: option('relation') ?? 'child' }
  for (const [flag, key] of [['min-balance', 'minBalance'], ['max-balance', 'maxBalance'], ['max-packet-amount', 'maxPacketAmount']] as const) {
    const value = option(flag)
    if (value !== undefined) account[key] = value
  }
  const expiresIn = option('expires-in')
  const callbackUrls = listOption(ctx.values, 'callback-url')
  const body = {
    account,
    ...(option('id') ? { id: option('id') } : {}),
    ...(callbackUrls.length > 0 ? { callbackUrls } : {}),
    ...(expiresIn ? { expiresInMs: parseDuration(expiresIn) } : {}),
  }
  const issued = await ctx.client.post<IssuedTicket>('/admin/tickets', body)
  if (ctx.json) {
    printJson(issued)
    return 0
  }
  print(`ticket for a ${String(account.relation)} account (${assetCode} scale ${assetScale}), valid until ${issued.expiresAt}`)
  print(fields([['ticket', issued.ticket], ...(callbackUrls.length > 0 ? [['rpc url prefixes', callbackUrls.join(' ')] as [string, string]] : [])]))
  print('shown this once: give it to the user, who redeems it with ilp_redeemTicket (ilp-farm-client redeem --rpc <farm>/rpc --ticket <ticket>)')
  return 0
}
