import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import {
  type FarmCommand,
  type FarmContext,
  listOption,
  type OptionValues,
  positionals,
  print,
  printJson,
  stringOption,
  UsageError,
  withArgs,
} from '../command.js'
import { fields, money, percent, plural, table } from '../format.js'
import { limitState } from '../limits.js'
import type { AccountView, AddedAccount, RemovedAccount } from '../views.js'

const USAGE = `Usage:
  ilp-farm accounts list
  ilp-farm accounts add --id ID --relation parent|peer|child --asset-code CODE --asset-scale N
                        [--min-balance N] [--max-balance N] [--max-packet-amount N]
                        [--token T] [--outgoing-url URL] [--outgoing-token T] [--outgoing-mode sync|async]
                        [--route PREFIX]...
  ilp-farm accounts add --file account.json|account.yaml
  ilp-farm accounts remove ID

list     every account with its balance and limits (GET /admin/accounts)
add      adds an account at runtime (POST /admin/accounts); the fields are those of the
         config file's accounts[]; amounts in base units. Without --token (incoming.token)
         the farm generates one: it is printed once, store it then.
remove   removes an account (DELETE /admin/accounts/ID) and prints the balance it had

Options of add:
  --id ID                    the account id (an ILP address segment)
  --relation R               parent, peer or child
  --asset-code CODE          e.g. USD
  --asset-scale N            e.g. 6 (amounts are in units of 10^-N)
  --min-balance N            lowest balance (negative: credit the farm extends); default 0
  --max-balance N            highest balance (what the farm may owe); default: no limit
  --max-packet-amount N      larger packets from it are refused (F08)
  --token T                  incoming.token, what the account sends as Bearer; default: generated
                             (so here the admin token is --admin-token, ILP_FARM_ADMIN_TOKEN or --config)
  --outgoing-url URL         where the farm sends the account's packets (ILP-over-HTTP)
  --outgoing-token T         the Bearer token the farm sends there
  --outgoing-mode M          sync (default) or async (RFC 35 draft 3)
  --route PREFIX             a static route to this account; repeat for more
  --file FILE                the whole account as JSON or YAML instead of the flags
`

const OPTIONS = {
  id: { type: 'string' },
  relation: { type: 'string' },
  'asset-code': { type: 'string' },
  'asset-scale': { type: 'string' },
  'min-balance': { type: 'string' },
  'max-balance': { type: 'string' },
  'max-packet-amount': { type: 'string' },
  token: { type: 'string' },
  'outgoing-url': { type: 'string' },
  'outgoing-token': { type: 'string' },
  'outgoing-mode': { type: 'string' },
  route: { type: 'string', multiple: true },
  file: { type: 'string' },
} as const

/** The flags only `add` takes (`--token` is the admin token in list and remove, as in every command). */
const ADD_FLAGS = Object.keys(OPTIONS).filter((f) => f !== 'token')

export const accountsCommand: FarmCommand = {
  name: 'accounts',
  summary: ['accounts list|add|remove', 'list, add (flags or --file) and remove accounts'],
  usage: USAGE,
  options: OPTIONS,
  // The issue's `accounts add --token T` is the new account's incoming token, so there the admin token
  // comes from --admin-token, ILP_FARM_ADMIN_TOKEN or --config; elsewhere --token is the admin token.
  adminTokenFlag: (args) => (args[0] === 'add' ? 'admin-token' : 'token'),
  async run(ctx) {
    const [sub, ...rest] = ctx.args
    const subCtx = withArgs(ctx, rest)
    if (sub !== 'add') rejectAddFlags(ctx.values, sub)
    switch (sub) {
      case 'list':
      case undefined:
        return list(subCtx)
      case 'add':
        positionals(subCtx, [], 'accounts')
        return add(subCtx)
      case 'remove':
        return remove(subCtx)
      default:
        throw new UsageError(`unknown accounts subcommand "${sub}" (list, add, remove)`, 'accounts')
    }
  },
}

function rejectAddFlags(values: OptionValues, sub: string | undefined): void {
  const given = ADD_FLAGS.filter((f) => values[f] !== undefined)
  if (given.length > 0) throw new UsageError(`--${given[0]} belongs to "accounts add", not "accounts ${sub ?? 'list'}"`, 'accounts')
}

async function list(ctx: FarmContext): Promise<number> {
  positionals(ctx, [], 'accounts')
  const views = await ctx.client.get<AccountView[]>('/admin/accounts')
  if (ctx.json) {
    printJson(views)
    return 0
  }
  print(accountsTable(views))
  print(plural(views.length, 'account'))
  return 0
}

/** Accounts with balance and limits, for `accounts list` and `inspect`. */
export function accountsTable(views: AccountView[]): string {
  const rows = views.map((v) => {
    const state = limitState(v)
    const where = state?.position === undefined ? (v.maxBalance === null ? 'no max' : '') : percent(state.position)
    return [
      v.id,
      v.relation,
      `${v.assetCode}/${v.assetScale}`,
      v.balance,
      v.minBalance,
      v.maxBalance ?? '-',
      state?.receiveRoom === undefined ? '-' : state.receiveRoom.toString(),
      v.maxPacketAmount ?? '-',
      [where, state?.flag ? `(${state.flag.toUpperCase()})` : ''].filter((s) => s !== '').join(' '),
    ]
  })
  return table(
    [
      'id',
      'relation',
      'asset/scale',
      { header: 'balance', align: 'right' },
      { header: 'min', align: 'right' },
      { header: 'max', align: 'right' },
      { header: 'room to max', align: 'right' },
      { header: 'max packet', align: 'right' },
      'min→max',
    ],
    rows,
  )
}

async function add(ctx: FarmContext): Promise<number> {
  const file = stringOption(ctx.values, 'file')
  const account = file === undefined ? accountFromFlags(ctx.values) : accountFromFile(file, ctx.values)
  if (stringOption(ctx.values, 'token') === ctx.client.target.token) {
    // Almost surely meant as the admin token (--token is that in every other command): never make it an account's.
    throw new UsageError(
      'in "accounts add", --token is the new account\'s incoming token and must not be the admin token; ' +
        'give the admin token with --admin-token, ILP_FARM_ADMIN_TOKEN or --config',
      'accounts',
    )
  }
  const added = await ctx.client.post<AddedAccount>('/admin/accounts', account)
  if (ctx.json) {
    printJson(added)
    return 0
  }
  const v = added.account
  print(`added account ${v.id} (${v.relation}, ${v.assetCode} scale ${v.assetScale})`)
  print(accountFields(v))
  if (added.token !== undefined) {
    print(`\nincoming token of ${v.id} (shown this once; store it now, the farm keeps only a digest):\n  ${added.token}`)
  }
  return 0
}

function accountFromFile(file: string, values: OptionValues): unknown {
  const others = [...ADD_FLAGS, 'token'].filter((f) => f !== 'file' && values[f] !== undefined)
  if (others.length > 0) throw new UsageError(`--file and --${others[0]} do not go together: the file is the whole account`, 'accounts')
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new UsageError(`--file: cannot read ${file}: ${(err as Error).message}`, 'accounts')
  }
  let parsed: unknown
  try {
    parsed = extname(file).toLowerCase() === '.json' ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new UsageError(`--file: ${file} is not valid JSON or YAML: ${(err as Error).message}`, 'accounts')
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new UsageError(`--file: ${file} must hold one account object (as an element of the config's accounts[])`, 'accounts')
  }
  return parsed
}

const RELATIONS = ['parent', 'peer', 'child']

/** The account object of the config file from the flags; the farm validates the rest (and says what is wrong). */
function accountFromFlags(values: OptionValues): Record<string, unknown> {
  const required = (name: string): string => {
    const v = stringOption(values, name)
    if (v === undefined || v === '') throw new UsageError(`accounts add needs --${name} (or --file)`, 'accounts')
    return v
  }
  const id = required('id')
  const relation = required('relation')
  if (!RELATIONS.includes(relation)) throw new UsageError(`--relation must be parent, peer or child, got "${relation}"`, 'accounts')
  const assetCode = required('asset-code')
  const scaleText = required('asset-scale')
  const assetScale = Number(scaleText)
  if (!/^\d+$/.test(scaleText) || assetScale > 255) throw new UsageError(`--asset-scale must be an integer 0..255, got "${scaleText}"`, 'accounts')
  const account: Record<string, unknown> = { id, relation, assetCode, assetScale }
  copy(values, account, { 'min-balance': 'minBalance', 'max-balance': 'maxBalance', 'max-packet-amount': 'maxPacketAmount' })
  const token = stringOption(values, 'token')
  if (token !== undefined) account.incoming = { token }
  const outgoing = outgoingFromFlags(values)
  if (outgoing) account.outgoing = outgoing
  const routes = listOption(values, 'route')
  if (routes.length > 0) account.routes = routes
  return account
}

function copy(values: OptionValues, into: Record<string, unknown>, names: Record<string, string>): void {
  for (const [flag, field] of Object.entries(names)) {
    const v = stringOption(values, flag)
    if (v !== undefined) into[field] = v
  }
}

function outgoingFromFlags(values: OptionValues): Record<string, string> | undefined {
  const url = stringOption(values, 'outgoing-url')
  const token = stringOption(values, 'outgoing-token')
  const mode = stringOption(values, 'outgoing-mode')
  if (url === undefined) {
    if (token !== undefined || mode !== undefined) throw new UsageError('--outgoing-token and --outgoing-mode need --outgoing-url', 'accounts')
    return undefined
  }
  return { url, ...(token !== undefined ? { token } : {}), ...(mode !== undefined ? { mode } : {}) }
}

async function remove(ctx: FarmContext): Promise<number> {
  const [id] = positionals(ctx, ['id'], 'accounts')
  const removed = await ctx.client.delete<RemovedAccount>(`/admin/accounts/${encodeURIComponent(id!)}`)
  if (ctx.json) {
    printJson(removed)
    return 0
  }
  print(`removed account ${removed.id}; ${owedSentence(removed.id, removed.balance)}`)
  return 0
}

/** What a balance means, in words (its sign is easy to misread). */
export function owedSentence(id: string, balance: string): string {
  if (balance === '0') return `its balance was 0 (settled)`
  if (balance.startsWith('-')) return `its balance was ${balance}: ${id} owed the farm ${balance.slice(1)} (base units)`
  return `its balance was ${balance}: the farm owed ${id} ${balance} (base units)`
}

const ORIGINS: Record<string, string> = { config: 'the config file', admin: 'the admin API (at runtime)' }

/** One account as label/value lines. */
export function accountFields(v: AccountView): string {
  const state = limitState(v)
  const asset = { assetCode: v.assetCode, assetScale: v.assetScale }
  const pairs: Array<[string, string]> = [
    ['balance', money(v.balance, asset)],
    ['min balance', `${money(v.minBalance, asset)}${state ? `, can still send ${state.sendRoom}` : ''}`],
    [
      'max balance',
      v.maxBalance === null ? 'none (no limit)' : `${money(v.maxBalance, asset)}${state?.receiveRoom !== undefined ? `, can still receive ${state.receiveRoom}` : ''}`,
    ],
    ['max packet', v.maxPacketAmount === null ? 'none' : money(v.maxPacketAmount, asset)],
  ]
  if (v.creditsInFlight !== undefined && v.creditsInFlight !== '0') pairs.push(['credits in flight', v.creditsInFlight])
  if (v.settleThreshold != null) pairs.push(['settle threshold', `${money(v.settleThreshold, asset)}, settles to ${v.settleTo ?? '0'}`])
  if (v.origin != null) pairs.push(['defined in', ORIGINS[v.origin] ?? v.origin])
  if (state?.flag) pairs.push(['limit', state.flag.toUpperCase()])
  return fields(pairs)
}
