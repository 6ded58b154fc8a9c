import type { ParseArgsConfig } from 'node:util'
import type { Scope } from '../http/scopes.js'
import type { AdminClient } from './admin-client.js'

/** Bad arguments or a farm that cannot be located: exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose usage should be pointed at. */
    readonly command?: string,
  ) {
    super(message)
    this.name = 'UsageError'
  }
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>
export type OptionValues = Record<string, string | boolean | Array<string | boolean> | undefined>

/** What a farm command gets: its positionals and flags, the admin client, and whether to print JSON. */
export interface FarmContext {
  args: string[]
  values: OptionValues
  client: AdminClient
  json: boolean
  /** Clock of "now" for ages and times to expiry; a parameter so output is computed from one instant. */
  now: number
}

/** A subcommand that talks to a running farm through its admin API. */
export interface FarmCommand {
  name: string
  /** For `ilp-farm --help`: the synopsis and what it does. */
  summary: [synopsis: string, description: string]
  /** The full text of `ilp-farm <name> --help` (without the shared farm options, appended by main). */
  usage: string
  /** Its own flags, on top of the shared --url/--token/--config/--ca/--json. */
  options?: OptionSpec
  /**
   * The token scopes each subcommand needs, by subcommand ('' for the command without one); shown by its
   * --help. A token without them is answered 403 by the farm, printed, exit code 1.
   */
  scopes: Readonly<Record<string, readonly Scope[]>>
  /** Which flag carries the admin token for these positionals (default `token`; `admin-token` works everywhere). */
  adminTokenFlag?: (args: string[]) => 'token' | 'admin-token'
  /** Returns the exit code; farm errors are thrown (FarmError), bad usage too (UsageError). */
  run(ctx: FarmContext): Promise<number>
}

/**
 * The same context with other positionals (a subcommand's). Not a spread: that
 * would read the lazy `client` getter, i.e. locate the farm before the
 * arguments are checked.
 */
export function withArgs(ctx: FarmContext, args: string[]): FarmContext {
  return {
    args,
    values: ctx.values,
    json: ctx.json,
    now: ctx.now,
    get client() {
      return ctx.client
    },
  }
}

export function stringOption(values: OptionValues, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

export function listOption(values: OptionValues, name: string): string[] {
  const v = values[name]
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string')
  return typeof v === 'string' ? [v] : []
}

/** Exactly `count` positionals, named in the message when missing or extra. */
export function positionals(ctx: { args: string[] }, names: string[], command: string): string[] {
  if (ctx.args.length < names.length) {
    throw new UsageError(`missing ${names.slice(ctx.args.length).map((n) => `<${n}>`).join(' ')}`, command)
  }
  if (ctx.args.length > names.length) throw new UsageError(`unexpected argument "${ctx.args[names.length]}"`, command)
  return ctx.args
}

/** The "Token scopes:" line of a command's --help. */
export function scopesHelp(cmd: Pick<FarmCommand, 'name' | 'scopes'>): string {
  const entries = Object.entries(cmd.scopes)
  const text = (scopes: readonly Scope[]) => scopes.join(' and ')
  if (entries.length === 1 && entries[0]![0] === '') return `Token scope: ${text(entries[0]![1])}`
  return `Token scopes: ${entries.filter(([sub]) => sub !== '').map(([sub, scopes]) => `${cmd.name} ${sub}: ${text(scopes)}`).join('; ')}`
}

/** stdout, in one write per call; main exits only once it is written out, so nothing is lost at exit. */
export function print(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`)
}

export function printError(text: string): void {
  process.stderr.write(text.endsWith('\n') ? text : `${text}\n`)
}

/** The API's JSON as it came, for scripts: one document on stdout. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2))
}
