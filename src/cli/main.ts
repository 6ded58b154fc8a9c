#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ConfigError, loadConfigFile } from '../config/load.js'
import { RedisBinaryMissingError } from '../farm/embedded-redis.js'
import { type Supervisor, startSupervisor } from '../farm/supervisor.js'
import { packageRoot } from '../util/package-root.js'

const USAGE = `Usage: ilp-farm <command> [options]

Commands:
  start [--config FILE]   start the farm (default config: config/example.yaml)
  check [--config FILE]   validate a config file and exit

Options:
  -c, --config FILE       YAML or JSON config
  -h, --help              show this help
  -v, --version           show the version

Environment:
  REDIS_URL               use this Redis instead of starting an embedded redis-server
  REDIS_SERVER_BIN        path of the redis-server binary for the embedded Redis
`

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

async function main(argv: string[]): Promise<number> {
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
    console.log(version())
    return 0
  }
  const [command] = positionals
  if (values.help || !command) {
    console.log(USAGE)
    return values.help ? 0 : 2
  }
  switch (command) {
    case 'start':
      await start(values.config)
      return -1 // keeps running until a signal
    case 'check':
      loadConfigFile(values.config)
      console.log(`${values.config}: ok`)
      return 0
    default:
      console.error(`unknown command: ${command}\n\n${USAGE}`)
      return 2
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exit(code)
  },
  (err: unknown) => {
    if (err instanceof ConfigError) {
      console.error(err.message)
      process.exit(2)
    }
    if (err instanceof RedisBinaryMissingError) {
      console.error(`ilp-farm: ${err.message}`)
      process.exit(1)
    }
    console.error(`ilp-farm: ${(err as Error).message ?? String(err)}`)
    process.exit(1)
  },
)
