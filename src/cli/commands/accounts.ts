import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { FarmError } from '../admin-client.js'
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
import { MAX_PAGE, readAccountsPage, readAllAccounts } from '../account-pages.js'
import { IMPORT_FLAGS, IMPORT_OPTIONS, importAccounts } from './accounts-import.js'

const USAGE = `Usage:
  ilp-farm accounts list [--limit N] [--cursor ID]
  ilp-farm accounts add --id ID --relation parent|peer|child --asset-code CODE --asset-scale N
                        [--min-balance N] [--max-balance N] [--max-packet-amount N]
                        [--token T] [--outgoing-url URL] [--outgoing-token T] [--outgoing-mode sync|async]
                        [--route PREFIX]... [--callback-url PREFIX]...
  ilp-farm accounts add --file account.json|account.yaml
  ilp-farm accounts update ID [--callback-url PREFIX]... [--clear-callback-urls]
                        [--min-balance N] [--max-balance N|none] [--max-packet-amount N|none]
                        [--outgoing-token T]
  ilp-farm accounts import FILE|- [--update] [--tokens-out FILE]
  ilp-farm accounts remove ID
  ilp-farm accounts token ID

list     every account with its balance and limits (GET /admin/accounts, page after page);
         with --limit N or --cursor ID one page, and the cursor of the next
add      adds an account at runtime (POST /admin/accounts); the fields are those of the
         config file's accounts[]; amounts in base units. Without --token (incoming.token)
         the farm generates one: it is printed once, store it then.
update   changes the given fields of an account and keeps the rest, its token included: reads
         it (GET /admin/accounts/ID) and writes it back whole (PUT /admin/accounts/ID). Not
         atomic: a change someone else makes between the two is overwritten.
import   many accounts from JSON Lines, one account object per line as in the config file's
         accounts[] (- reads standard input); streamed in batches (POST /admin/accounts/import),
         each refused line reported by its number, then a summary. Running the same file again
         changes nothing (every line "unchanged"): a failed or interrupted import is safely re-run
remove   removes an account (DELETE /admin/accounts/ID) and prints the balance it had
token    revokes the account's token by giving it a new one (POST /admin/accounts/ID/token),
         printed once: the old one stops working on every worker within a second

Options of list:
  --limit N                  one page of N accounts (1 to 1000) in id order
  --cursor ID                the page after account ID (the "next page" cursor a page prints)

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
  --callback-url PREFIX      incoming.callbackUrls: a URL prefix the farm may call for the account
                             (its RPC URL, ilp_setRpcUrl; async Callback-Urls), such as the tunnel
                             server it uses, "https://tunnel.example.com/"; repeat for more
  --file FILE                the whole account as JSON or YAML instead of the flags

Options of update (amounts in base units; the others as for add):
  --callback-url PREFIX      replaces incoming.callbackUrls with the prefixes given; repeat for more
  --clear-callback-urls      removes incoming.callbackUrls (back to the default: the origin of
                             outgoing.url; none without one)
  --min-balance N, --max-balance N|none, --max-packet-amount N|none   (none: no limit)
  --outgoing-token T         the Bearer token the farm sends to outgoing.url; the admin API never
                             shows it, so an account that has one needs it given again

Options of import (exit 0: every line created, updated or unchanged; 1: a line refused or the
farm failed; 2: bad usage or a file that cannot be read):
  --update                   replace accounts that exist with other settings (else "exists");
                             a line without a token keeps the account's token
  --tokens-out FILE          append {"id","token"} JSON lines for the tokens the farm generated
                             (lines without incoming.token); without it they are shown nowhere
  --json                     the summary as JSON, with every refused line
`

const LIST_OPTIONS = {
  limit: { type: 'string' },
  cursor: { type: 'string' },
} as const

/** The flags only `list` takes. */
const LIST_FLAGS = Object.keys(LIST_OPTIONS)

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
  'callback-url': { type: 'string', multiple: true },
  'clear-callback-urls': { type: 'boolean' },
  file: { type: 'string' },
} as const

/** The flags `update` takes; `--token` is the admin token everywhere but in `add`. */
const UPDATE_FLAGS = ['callback-url', 'clear-callback-urls', 'min-balance', 'max-balance', 'max-packet-amount', 'outgoing-token']
/** The flags `add` takes. */
const ADD_FLAGS = Object.keys(OPTIONS).filter((f) => f !== 'token' && f !== 'clear-callback-urls')

export const accountsCommand: FarmCommand = {
  name: 'accounts',
  summary: ['accounts list|add|update|import|remove|token', 'list, add (flags or --file), update (some fields), import (JSON Lines), remove accounts, renew a token'],
  usage: USAGE,
  options: { ...OPTIONS, ...LIST_OPTIONS, ...IMPORT_OPTIONS },
  // In `accounts add`, --token T is the new account's incoming token, so there the admin token
  // comes from --admin-token, ILP_FARM_ADMIN_TOKEN or --config; elsewhere --token is the admin token.
  scopes: { list: ['read'], add: ['accounts'], update: ['read', 'accounts'], import: ['accounts'], remove: ['accounts'], token: ['accounts'] },
  adminTokenFlag: (args) => (args[0] === 'add' ? 'admin-token' : 'token'),
  async run(ctx) {
    const [sub, ...rest] = ctx.args
    const subCtx = withArgs(ctx, rest)
    rejectOtherFlags(ctx.values, sub)
    switch (sub) {
      case 'list':
      case undefined:
        return list(subCtx)
      case 'add':
        positionals(subCtx, [], 'accounts')
        return add(subCtx)
      case 'update':
        return update(subCtx)
      case 'import':
        return importAccounts(subCtx)
      case 'remove':
        return remove(subCtx)
      case 'token':
        return renewToken(subCtx)
      default:
        throw new UsageError(`unknown accounts subcommand "${sub}" (list, add, update, import, remove, token)`, 'accounts')
    }
  },
}

/** A flag of another subcommand is a mistake: say whose it is. */
function rejectOtherFlags(values: OptionValues, sub: string | undefined): void {
  const flagsOf: Array<[string, string[]]> = [['add', ADD_FLAGS], ['update', UPDATE_FLAGS], ['list', LIST_FLAGS], ['import', IMPORT_FLAGS]]
  const own = flagsOf.find(([name]) => name === (sub ?? 'list'))?.[1] ?? []
  const given = flagsOf.flatMap(([, flags]) => flags).find((f) => values[f] !== undefined && !own.includes(f))
  if (given === undefined) return
  const owner = flagsOf.find(([, flags]) => flags.includes(given))![0]
  throw new UsageError(`--${given} belongs to "accounts ${owner}", not "accounts ${sub ?? 'list'}"`, 'accounts')
}

/** Every account, page after page (--json: one document shaped as a last page); or one page with --limit / --cursor. */
async function list(ctx: FarmContext): Promise<number> {
  positionals(ctx, [], 'accounts')
  const cursor = stringOption(ctx.values, 'cursor')
  const limitText = stringOption(ctx.values, 'limit')
  if (cursor === undefined && limitText === undefined) {
    const views = await readAllAccounts(ctx.client)
    if (ctx.json) {
      printJson({ accounts: views, nextCursor: null })
      return 0
    }
    print(accountsTable(views))
    print(plural(views.length, 'account'))
    return 0
  }
  const limit = limitText === undefined ? undefined : pageLimit(limitText)
  const page = await readAccountsPage(ctx.client, { ...(cursor === undefined ? {} : { cursor }), ...(limit === undefined ? {} : { limit }) })
  if (ctx.json) {
    printJson(page)
    return 0
  }
  print(accountsTable(page.accounts))
  const next = page.nextCursor === null ? 'the last page' : `next page: ilp-farm accounts list --cursor ${page.nextCursor}${limit === undefined ? '' : ` --limit ${limit}`}`
  print(`${plural(page.accounts.length, 'account')}; ${next}`)
  return 0
}

function pageLimit(text: string): number {
  const limit = Number(text)
  if (!/^\d+$/.test(text) || limit < 1 || limit > MAX_PAGE) throw new UsageError(`--limit must be a whole number from 1 to ${MAX_PAGE}, got "${text}"`, 'accounts')
  return limit
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
      v.origin ?? '-',
      reachedBy(v),
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
      'origin',
      'reached by',
    ],
    rows,
  )
}

/**
 * How the farm reaches the account now: `rpc url` (a user is online: its
 * RPC URL is registered, and wins over an outgoing URL), `outgoing url`, or
 * `OFFLINE` (packets for it get T01 until it registers one). `?` for a farm
 * whose view does not say.
 */
export function reachedBy(v: AccountView): string {
  if (v.rpcUrl === undefined && v.outgoing === undefined) return '?'
  if (v.rpcUrl != null) return 'rpc url'
  if (v.outgoing != null) return 'outgoing url'
  return 'OFFLINE'
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
  const callbackUrls = listOption(values, 'callback-url')
  // Without a token the farm makes one and keeps the rest of incoming.
  if (token !== undefined || callbackUrls.length > 0) {
    account.incoming = { ...(token !== undefined ? { token } : {}), ...(callbackUrls.length > 0 ? { callbackUrls } : {}) }
  }
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

async function update(ctx: FarmContext): Promise<number> {
  const [id] = positionals(ctx, ['id'], 'accounts')
  if (!UPDATE_FLAGS.some((f) => ctx.values[f] !== undefined)) {
    throw new UsageError(`accounts update needs a change: ${UPDATE_FLAGS.map((f) => `--${f}`).join(', ')}`, 'accounts')
  }
  if (ctx.values['callback-url'] !== undefined && ctx.values['clear-callback-urls'] !== undefined) {
    throw new UsageError('--callback-url and --clear-callback-urls do not go together', 'accounts')
  }
  const path = `/admin/accounts/${encodeURIComponent(id!)}`
  const view = await ctx.client.get<AccountView>(path)
  const account = accountFromView(view)
  applyChanges(account, view, ctx.values)
  const updated = await ctx.client.put<AccountView>(path, account)
  if (ctx.json) {
    printJson(updated)
    return 0
  }
  print(`updated account ${updated.id} (${updated.relation}, ${updated.assetCode} scale ${updated.assetScale}); its token is unchanged`)
  print(accountFields(updated))
  return 0
}

/**
 * The account as the config file has it, from its admin view, to PUT back whole. An `incoming` without a
 * token keeps the account's token (the farm fills in its digest); an outgoing token cannot be read back.
 */
function accountFromView(view: AccountView): Record<string, unknown> {
  const unshown = view.parallelism === undefined || view.metrics === undefined || (view.outgoing != null && view.outgoing.hasToken === undefined)
  if (view.incoming === undefined || unshown) {
    // Writing back what an older farm shows would drop what it does not show (the token among it).
    throw new FarmError(`the farm's view of ${view.id} does not show every field (a farm older than this CLI): change it with PUT /admin/accounts/${view.id}`)
  }
  const account: Record<string, unknown> = {
    id: view.id,
    relation: view.relation,
    assetCode: view.assetCode,
    assetScale: view.assetScale,
    minBalance: view.minBalance,
    ...(view.maxBalance !== null ? { maxBalance: view.maxBalance } : {}),
    ...(view.maxPacketAmount !== null ? { maxPacketAmount: view.maxPacketAmount } : {}),
    ...(view.parallelism !== null ? { parallelism: view.parallelism } : {}),
    ...(view.metrics !== null ? { metrics: view.metrics } : {}),
    ...(view.settleThreshold != null ? { settleThreshold: view.settleThreshold, settleTo: view.settleTo ?? '0' } : {}),
    routes: view.routes ?? [],
    sendRoutes: view.sendRoutes ?? false,
    receiveRoutes: view.receiveRoutes ?? false,
  }
  if (view.incoming !== null) account.incoming = view.incoming.callbackUrls === null ? {} : { callbackUrls: view.incoming.callbackUrls }
  if (view.outgoing != null) account.outgoing = { url: view.outgoing.url, mode: view.outgoing.mode }
  return account
}

/** The flags' changes to the account read from `view`. */
function applyChanges(account: Record<string, unknown>, view: AccountView, values: OptionValues): void {
  for (const [flag, field] of [['min-balance', 'minBalance'], ['max-balance', 'maxBalance'], ['max-packet-amount', 'maxPacketAmount']] as const) {
    const value = stringOption(values, flag)
    if (value === undefined) continue
    if (value !== 'none') account[field] = value
    else if (field === 'minBalance') throw new UsageError('--min-balance takes an amount (the lowest balance); "none" is for the upper limits', 'accounts')
    else delete account[field]
  }
  const callbackUrls = listOption(values, 'callback-url')
  if (callbackUrls.length > 0 || values['clear-callback-urls'] === true) {
    if (view.incoming === null) throw new FarmError(`${view.id} has no incoming token, which callbackUrls go with: give it one first (PUT /admin/accounts/${view.id})`)
    account.incoming = callbackUrls.length > 0 ? { callbackUrls } : {}
  }
  const outgoingToken = stringOption(values, 'outgoing-token')
  if (view.outgoing == null) {
    if (outgoingToken !== undefined) throw new UsageError(`--outgoing-token: ${view.id} has no outgoing.url`, 'accounts')
    return
  }
  if (view.outgoing.hasToken && outgoingToken === undefined) {
    throw new UsageError(`${view.id} has an outgoing.token, which the admin API never shows: give it again with --outgoing-token T, or it would be lost`, 'accounts')
  }
  if (outgoingToken !== undefined) account.outgoing = { url: view.outgoing.url, mode: view.outgoing.mode, token: outgoingToken }
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

async function renewToken(ctx: FarmContext): Promise<number> {
  const [id] = positionals(ctx, ['id'], 'accounts')
  const renewed = await ctx.client.post<{ id: string; token: string }>(`/admin/accounts/${encodeURIComponent(id!)}/token`, {})
  if (ctx.json) {
    printJson(renewed)
    return 0
  }
  print(`the old token of ${renewed.id} no longer works; its new incoming token (shown this once; store it now, the farm keeps only a digest):\n  ${renewed.token}`)
  return 0
}

/** What a balance means, in words (its sign is easy to misread). */
export function owedSentence(id: string, balance: string): string {
  if (balance === '0') return `its balance was 0 (settled)`
  if (balance.startsWith('-')) return `its balance was ${balance}: ${id} owed the farm ${balance.slice(1)} (base units)`
  return `its balance was ${balance}: the farm owed ${id} ${balance} (base units)`
}

const REACHED_BY: Record<string, string> = {
  'rpc url': 'its RPC URL (online)',
  'outgoing url': 'its outgoing URL',
  OFFLINE: 'nothing: offline, no RPC URL registered and no outgoing URL (packets for it get T01)',
}

const ORIGINS: Record<string, string> = {
  config: 'the config file',
  admin: 'the admin API (at runtime)',
  ticket: 'a redeemed ticket',
  signup: 'open sign-up',
}

/** The prefixes the account's RPC URL may have, and where they come from. */
function urlPrefixes(v: AccountView): string {
  const prefixes = v.allowedUrlPrefixes ?? []
  if (prefixes.length === 0) return 'none: the farm calls it at no URL of its choosing (ilp_setRpcUrl is refused); see --callback-url'
  const defaulted = v.incoming != null && v.incoming.callbackUrls === null
  return `${prefixes.join(' ')}${defaulted ? ' (the default: the origin of outgoing.url)' : ''}`
}

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
  if (v.allowedUrlPrefixes !== undefined) pairs.push(['url prefixes', urlPrefixes(v)])
  pairs.push(['reached by', REACHED_BY[reachedBy(v)] ?? reachedBy(v)])
  if (v.rpcUrl != null) pairs.push(['rpc url', v.rpcUrl])
  if (state?.flag) pairs.push(['limit', state.flag.toUpperCase()])
  return fields(pairs)
}
