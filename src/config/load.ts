import { readFileSync } from 'node:fs'
import { extname } from 'node:path'
import { parse as parseYaml } from 'yaml'
import type { z } from 'zod'
import { accountSchema, type AccountConfig, configSchema, type FarmConfig, isRedisSeedUrl, REDIS_SEED_PROBLEM } from './schema.js'

/** A config that cannot be used; `problems` are "field.path: reason" lines. */
export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
  }
}

type Path = ReadonlyArray<PropertyKey>

export function formatPath(path: Path): string {
  let out = ''
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`
    else out += out === '' ? String(part) : `.${String(part)}`
  }
  return out === '' ? '(root)' : out
}

const ENV_REF = /\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g

/** Replaces `${NAME}` and `${NAME:-default}` in every string, so secrets can live in the environment. */
function substituteEnv(value: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[], problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(ENV_REF, (_match, name: string, fallback: string | undefined) => {
      const found = env[name]
      if (found !== undefined && found !== '') return found
      if (fallback !== undefined) return fallback
      problems.push(`${formatPath(path)}: environment variable ${name} is not set`)
      return ''
    })
  }
  if (Array.isArray(value)) return value.map((item, i) => substituteEnv(item, env, [...path, i], problems))
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[key] = substituteEnv(item, env, [...path, key], problems)
    return out
  }
  return value
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown key`)
  }
  if ((issue.code === 'invalid_type' || issue.code === 'invalid_value') && issue.input === undefined) {
    return [`${formatPath(issue.path)}: is required`]
  }
  return [`${formatPath(issue.path)}: ${issue.message}`]
}

/**
 * The checks of one account that its schema cannot express, as `field: reason`
 * (paths relative to the account). Shared by the config file and the admin API.
 */
export function checkAccount(account: AccountConfig): string[] {
  const problems: string[] = []
  if (account.maxBalance !== undefined && BigInt(account.maxBalance) < BigInt(account.minBalance)) {
    problems.push(`maxBalance: must not be below minBalance (${account.minBalance})`)
  }
  if (account.routes.length > 0 && !account.outgoing) {
    problems.push('routes: an account with routes needs outgoing.url')
  }
  if (account.outgoing?.mode === 'async' && !account.incoming) {
    problems.push('outgoing.mode: async needs incoming.token (the peer authenticates its callbacks with it)')
  }
  if (account.settleTo !== undefined && account.settleThreshold === undefined) {
    problems.push('settleTo: needs settleThreshold')
  }
  if (account.settleThreshold !== undefined && BigInt(account.settleTo ?? '0') >= BigInt(account.settleThreshold)) {
    problems.push(`settleTo: must be below settleThreshold (${account.settleThreshold})`)
  }
  return problems
}

/** One account object (config file syntax) validated exactly as in a config file, or its problems. */
export function parseAccount(raw: unknown): { account: AccountConfig } | { problems: string[] } {
  // the input is kept in the issues only when there are some: a valid account (the bulk of an import) parses at twice the speed
  const result = accountSchema.safeParse(raw)
  if (!result.success) return { problems: accountSchema.safeParse(raw, { reportInput: true }).error!.issues.flatMap(describeIssue) }
  const problems = checkAccount(result.data)
  return problems.length > 0 ? { problems } : { account: result.data }
}

/**
 * Ids no new account may take, compared case-insensitively: the names of
 * RFC 15's allocation schemes (`peer` as in `peer.config`, `self`, `g`,
 * `test`, ...), which an address `<farm>.<id>` would seem to belong to, and
 * the farm's own names (`admin`, `farm`, the API paths), which a user could
 * pass off as the operator's. Only new accounts are held to it (sign-up,
 * tickets, the admin API, import): accounts of the config file and accounts
 * already stored keep their ids, so a farm that has one still starts.
 */
export const RESERVED_ACCOUNT_IDS: ReadonlySet<string> = new Set([
  // RFC 15 allocation schemes
  'g', 'private', 'example', 'peer', 'self', 'test', 'test1', 'test2', 'test3', 'local',
  // the farm's own names
  'admin', 'farm', 'operator', 'root', 'system', 'connector', 'api', 'rpc', 'metrics', 'dashboard', 'spsp', 'ilp',
])

/** The problem with `id` for a new account, as `id: reason`; undefined when it may be used. */
export function reservedIdProblem(id: string): string | undefined {
  return RESERVED_ACCOUNT_IDS.has(id.toLowerCase()) ? `id: "${id}" is reserved (a name of the farm or of an ILP address scheme)` : undefined
}

/** parseAccount for an account about to be created: a reserved id is refused too. */
export function parseNewAccount(raw: unknown): { account: AccountConfig } | { problems: string[] } {
  const parsed = parseAccount(raw)
  if ('problems' in parsed) return parsed
  const problem = reservedIdProblem(parsed.account.id)
  return problem === undefined ? parsed : { problems: [problem] }
}

/** Checks that need the whole config: unique ids, routes naming real accounts. */
function crossCheck(config: FarmConfig): string[] {
  const problems: string[] = []
  const firstIndex = new Map<string, number>()
  config.accounts.forEach((account, i) => {
    const earlier = firstIndex.get(account.id)
    if (earlier !== undefined) {
      problems.push(`accounts[${i}].id: duplicate account id "${account.id}" (also accounts[${earlier}])`)
    } else {
      firstIndex.set(account.id, i)
    }
    for (const problem of checkAccount(account)) problems.push(`accounts[${i}].${problem}`)
  })
  config.routes.forEach((route, i) => {
    const target = config.accounts.find((a) => a.id === route.account)
    if (!target) {
      problems.push(`routes[${i}].account: route to a missing account "${route.account}"`)
    } else if (!target.outgoing) {
      problems.push(`routes[${i}].account: account "${route.account}" has no outgoing.url`)
    }
  })
  return problems
}

/** Validates an already-parsed config object (from a file, or built by a test). */
export function parseConfig(raw: unknown, source = 'config', env: NodeJS.ProcessEnv = process.env): FarmConfig {
  const problems: string[] = []
  const substituted = substituteEnv(raw, env, [], problems)
  if (problems.length > 0) throw new ConfigError(source, problems)

  const result = configSchema.safeParse(substituted, { reportInput: true })
  if (!result.success) throw new ConfigError(source, result.error.issues.flatMap(describeIssue))

  const config = result.data
  // the environment picks the Redis over what the file says: a single Redis or a cluster's seed nodes
  if (env.REDIS_URL && env.REDIS_CLUSTER) {
    throw new ConfigError(source, ['REDIS_URL and REDIS_CLUSTER: set one of them (a single Redis, or the seed nodes of a Redis Cluster), not both'])
  }
  if (env.REDIS_URL) {
    config.redis.url = env.REDIS_URL
    delete config.redis.cluster
  }
  if (env.REDIS_CLUSTER) {
    const seeds = env.REDIS_CLUSTER.split(',').map((s) => s.trim()).filter((s) => s !== '')
    if (seeds.length === 0) throw new ConfigError(source, ['REDIS_CLUSTER: no seed node URL (comma-separated redis:// URLs)'])
    const bad = seeds.filter((seed) => !isRedisSeedUrl(seed))
    if (bad.length > 0) throw new ConfigError(source, bad.map((seed) => `REDIS_CLUSTER: "${seed.replace(/\/\/[^@/]*@/, '//***@')}" ${REDIS_SEED_PROBLEM}`))
    config.redis.cluster = seeds
    delete config.redis.url
  }
  const crossProblems = crossCheck(config)
  if (crossProblems.length > 0) throw new ConfigError(source, crossProblems)
  return config
}

export function loadConfigFile(file: string, env: NodeJS.ProcessEnv = process.env): FarmConfig {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, [`(file): cannot read: ${(err as Error).message}`])
  }
  if (text.trim() === '') throw new ConfigError(file, ['(file): is empty'])
  const json = extname(file).toLowerCase() === '.json'
  let raw: unknown
  try {
    raw = json ? JSON.parse(text) : parseYaml(text)
  } catch (err) {
    throw new ConfigError(file, [`(file): not valid ${json ? 'JSON' : 'YAML'}: ${(err as Error).message}`])
  }
  return parseConfig(raw, file, env)
}
