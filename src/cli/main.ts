#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfigFile } from '../config/load.js'
import { RedisBinaryMissingError } from '../farm/embedded-redis.js'
import { type Supervisor, startSupervisor } from '../farm/supervisor.js'
import { packageRoot } from '../util/package-root.js'
import { AdminClient, FarmError } from './admin-client.js'
import { type FarmCommand, type FarmContext, type OptionSpec, type OptionValues, print, printError, printJson, scopesHelp, stringOption, UsageError } from './command.js'
import { accountsCommand } from './commands/accounts.js'
import { balanceCommand } from './commands/balance.js'
import { BENCH_SUMMARY, benchUsage, runBenchCommand } from './commands/bench.js'
import { inflightCommand } from './commands/inflight.js'
import { inspectCommand } from './commands/inspect.js'
import { routesCommand } from './commands/routes.js'
import { ticketsCommand } from './commands/tickets.js'
import { depositCommand, withdrawCommand } from './commands/transfer.js'
import { runTunnelServerCommand, TUNNEL_SERVER_SUMMARY, TUNNEL_SERVER_USAGE } from './commands/tunnel-server.js'
import { workersCommand } from './commands/workers.js'
import { ENV_TOKEN, ENV_URL, resolveTarget } from './target.js'

const FARM_COMMANDS: FarmCommand[] = [
  accountsCommand,
  balanceCommand,
  depositCommand,
  withdrawCommand,
  routesCommand,
  inflightCommand,
  workersCommand,
  inspectCommand,
  ticketsCommand,
]

/** One aligned line of the command list. */
function line([synopsis, description]: [string, string]): string {
  return `  ${synopsis.padEnd(24)}  ${description}`
}

const FARM_OPTIONS_HELP = `Where the farm is (each value from the first of these that has it):
  --url URL               the farm's base URL, e.g. http://127.0.0.1:7768; else ${ENV_URL};
                          else --config FILE's http.host, http.port and http.tls
  --token T               the admin token (also --admin-token T); else ${ENV_TOKEN};
                          else --config FILE's admin.token
  -c, --config FILE       the farm's YAML or JSON config (read with the farm's own loader)
  --ca FILE               a PEM certificate to trust (a self-signed HTTPS farm); with --config
                          and http.tls, the farm's own certificate is trusted already
  --json                  print the admin API's JSON as it came instead of tables
`

const USAGE = `Usage: ilp-farm <command> [options]

Run a farm:
${line(['start [--config FILE]', 'start the farm (default config: config/example.yaml)'])}
${line(['check [--config FILE]', 'validate a config file and exit'])}

Operate a running farm (its admin API):
${FARM_COMMANDS.map((c) => line(c.summary)).join('\n')}

Measure:
${line(BENCH_SUMMARY)}

Serve users behind NAT:
${line(TUNNEL_SERVER_SUMMARY)}

Options:
  -c, --config FILE       YAML or JSON config
  -h, --help              show this help; ilp-farm <command> --help shows a command's
  -v, --version           show the version

${FARM_OPTIONS_HELP}
Exit codes: 0 ok, 1 the farm refused or failed (its message is printed), 2 bad usage or config.

Environment:
  REDIS_URL               use this Redis instead of starting an embedded redis-server
  REDIS_CLUSTER           use this Redis Cluster (comma-separated seed node URLs) instead
  REDIS_SERVER_BIN        path of the redis-server binary for the embedded Redis
  ${ENV_URL}, ${ENV_TOKEN}   where the farm is, for the admin commands
`

/** Flags shared by every admin command; a command's own options come on top. */
const FARM_OPTIONS: OptionSpec = {
  url: { type: 'string' },
  token: { type: 'string' },
  'admin-token': { type: 'string' },
  config: { type: 'string', short: 'c' },
  ca: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

/** Flags that take a value, so the scan for the command word skips their values: `--url U accounts list`. */
const VALUE_FLAGS = new Set(['--url', '--token', '--admin-token', '--config', '-c', '--ca'])

function version(): string {
  const pkg = JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }
  return pkg.version
}

async function start(configFile: string): Promise<void> {
  const config = loadConfigFile(configFile)
  // Signals are handled from the first moment: one that arrives while starting stops the farm once it is up.
  let supervisor: Supervisor | undefined = undefined
  let stopRequested: string | undefined
  const stop = (signal: string) => {
    if (stopRequested) {
      console.error(`ilp-farm: ${signal} again, exiting now`)
      process.exit(1)
    }
    stopRequested = signal
    if (!supervisor) return
    console.log(`ilp-farm: ${signal} received, stopping`)
    supervisor.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error('ilp-farm: error while stopping:', err)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  supervisor = await startSupervisor(config, (line) => console.log(line))
  console.log(
    `ilp-farm: ${config.ilpAddress} listening on ${supervisor.url} ` +
      `(${config.workers} worker${config.workers === 1 ? '' : 's'}, ${config.accounts.length} accounts)`,
  )
  if (stopRequested) {
    const signal = stopRequested
    stopRequested = undefined
    stop(signal)
  }
}

/** `start`, `check`, `--help`, `--version`: parsed as they always were. */
async function runFarmProcess(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string', short: 'c', default: 'config/example.yaml' },
      help: { type: 'boolean', short: 'h' },
      version: { type: 'boolean', short: 'v' },
    },
  })
  if (values.version) {
    print(version())
    return 0
  }
  const [command] = positionals
  if (values.help || !command) {
    print(USAGE)
    return values.help ? 0 : 2
  }
  switch (command) {
    case 'start':
      await start(values.config)
      return -1 // keeps running until a signal
    case 'check':
      loadConfigFile(values.config)
      print(`${values.config}: ok`)
      return 0
    default:
      throw new UsageError(`unexpected argument "${positionals[1] ?? ''}"`)
  }
}

/** The command word and the arguments without it; undefined when there is none. */
function findCommand(argv: string[]): { name: string; rest: string[] } | undefined {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--') return undefined
    if (VALUE_FLAGS.has(arg)) {
      i++
      continue
    }
    if (!arg.startsWith('-')) return { name: arg, rest: [...argv.slice(0, i), ...argv.slice(i + 1)] }
  }
  return undefined
}

function commandUsage(cmd: FarmCommand): string {
  return `${cmd.usage}\n${scopesHelp(cmd)} (a token with admin, or admin.token, has every scope)\n\n${FARM_OPTIONS_HELP}`
}

function parseCommandArgs(cmd: FarmCommand, args: string[]): { values: OptionValues; positionals: string[] } {
  try {
    const options = { ...FARM_OPTIONS, ...cmd.options }
    const parsed = parseArgs({ args: joinNegativeValues(args, options), allowPositionals: true, strict: true, options })
    return { values: parsed.values as OptionValues, positionals: parsed.positionals }
  } catch (err) {
    throw new UsageError((err as Error).message, cmd.name)
  }
}

/**
 * `--min-balance -500` as `--min-balance=-500`: parseArgs refuses a value that
 * starts with a dash (it could be a flag), but negative amounts are common here.
 */
function joinNegativeValues(args: string[], options: OptionSpec): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const next = args[i + 1]
    const name = arg.startsWith('--') ? arg.slice(2) : undefined
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\d+$/.test(next)) {
      out.push(`${arg}=${next}`)
      i++
    } else {
      out.push(arg)
    }
  }
  return out
}

async function runFarmCommand(cmd: FarmCommand, args: string[]): Promise<number> {
  const { values, positionals } = parseCommandArgs(cmd, args)
  if (values.help === true) {
    print(commandUsage(cmd))
    return 0
  }
  const json = values.json === true
  const tokenFlag = cmd.adminTokenFlag?.(positionals) ?? 'token'
  const targetInputs = {
    url: stringOption(values, 'url'),
    token: stringOption(values, 'admin-token') ?? (tokenFlag === 'token' ? stringOption(values, 'token') : undefined),
    config: stringOption(values, 'config'),
    ca: stringOption(values, 'ca'),
    env: process.env,
  }
  // Made at first use, so a command checks its own arguments before it complains about a missing --url.
  let client: AdminClient | undefined
  const ctx: FarmContext = {
    args: positionals,
    values,
    json,
    now: Date.now(),
    get client() {
      client ??= new AdminClient(resolveTarget(targetInputs))
      return client
    },
  }
  try {
    return await cmd.run(ctx)
  } catch (err) {
    // Scripts get the farm's error document on stdout too (the message goes to stderr, as for people).
    if (json && err instanceof FarmError && err.body !== null && typeof err.body === 'object') printJson(err.body)
    throw err
  } finally {
    await client?.close()
  }
}

async function main(argv: string[]): Promise<number> {
  const found = findCommand(argv)
  if (found === undefined || found.name === 'start' || found.name === 'check') return runFarmProcess(argv)
  if (found.name === 'help') return help(found.rest)
  if (found.name === 'bench') return runBenchCommand(found.rest)
  if (found.name === 'tunnel-server') return runTunnelServerCommand(found.rest)
  const cmd = FARM_COMMANDS.find((c) => c.name === found.name)
  if (!cmd) {
    printError(`unknown command: ${found.name}\n\n${USAGE}`)
    return 2
  }
  return runFarmCommand(cmd, found.rest)
}

/** `ilp-farm help [command]`. */
async function help(args: string[]): Promise<number> {
  const [name] = args
  if (name === undefined) print(USAGE)
  else if (name === 'bench') print(await benchUsage())
  else if (name === 'tunnel-server') print(TUNNEL_SERVER_USAGE)
  else {
    const cmd = FARM_COMMANDS.find((c) => c.name === name)
    if (!cmd) throw new UsageError(`unknown command: ${name}`)
    print(commandUsage(cmd))
  }
  return 0
}

/** The exit code for an error that reached the top, after printing it. */
function report(err: unknown): number {
  if (err instanceof ConfigError) {
    printError(err.message)
    return 2
  }
  if (err instanceof UsageError) {
    const hint = err.command ? `run "ilp-farm ${err.command} --help" for its usage` : 'run "ilp-farm --help" for the usage'
    printError(`ilp-farm: ${err.message}\n${hint}`)
    return 2
  }
  if (isParseArgsError(err)) {
    printError(`ilp-farm: ${err.message}\nrun "ilp-farm --help" for the usage`)
    return 2
  }
  if (err instanceof FarmError || err instanceof RedisBinaryMissingError) {
    printError(`ilp-farm: ${err.message}`)
    return 1
  }
  printError(`ilp-farm: ${(err as Error).message ?? String(err)}`)
  return 1
}

/** node:util parseArgs' own errors (unknown option, missing value): bad usage. */
function isParseArgsError(err: unknown): err is Error {
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_')
}

/**
 * process.exit once stdout and stderr are written out: a pipe whose reader is slower than the CLI
 * (`| jq`, a test runner) takes a large document in several writes, and exiting earlier cuts it off.
 */
function exitWhenWritten(code: number): void {
  let pending = 2
  const done = () => {
    if (--pending === 0) process.exit(code)
  }
  process.stdout.write('', done)
  process.stderr.write('', done)
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) exitWhenWritten(code)
  },
  (err: unknown) => {
    exitWhenWritten(report(err))
  },
)
