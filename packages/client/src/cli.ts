import { parseArgs } from 'node:util'
import cliProgress from 'cli-progress'
import { FarmClient, type FarmClientOptions, PaymentError, type PaymentProgress, type PaymentTarget } from './farm-client.js'
import { redeemTicket, signUp } from './onboarding.js'
import { FarmRpc, FarmRpcError } from './rpc.js'

const USAGE = `Usage: ilp-farm-client <command> [options]

Commands:
  receive        open a tunnel, register it with the farm, print a STREAM
                 destination and shared secret, then every payment that arrives
  pay            send a STREAM payment (with a progress bar)
  balance        print the account's balance and limits
  redeem         redeem an invitation ticket: prints the new account and its token
  signup         open sign-up (when the farm enables it): solves the proof of
                 work on worker threads, prints the new account and its token

Farm options (receive, pay, balance):
  --rpc URL            the farm's JSON-RPC URL   (env ILP_FARM_RPC_URL)
  --token T            the account's token       (env ILP_FARM_TOKEN)

receive:
  --tunnel-host URL    tunnel server, such as one a farm runs with ilp-farm tunnel-server
                       (env ILP_FARM_TUNNEL_HOST; default https://localtunnel.me)
  --subdomain ID       ask the tunnel server for this id
  --no-tunnel          register the local endpoint's own URL (a farm on this host)
  --port N             port of the local endpoint (default: a free one)

pay:
  --to ADDRESS --secret BASE64   destination and shared secret (as receive prints them)
  --spsp URL                     or an SPSP URL / payment pointer instead
  --amount N                     source amount, in the account's base units
  --timeout SECONDS              give up after this long (default 60)
  pay only sends: it opens no tunnel and leaves the account's RPC URL as it is
  (a receive running for the same account keeps receiving)

redeem:
  --rpc URL --ticket T [--id ID]
signup:
  --rpc URL [--id ID] [--threads N]

  -h, --help           show this help
`

class UsageError extends Error {}

function required(value: string | undefined, flag: string, env?: string): string {
  const v = value ?? (env === undefined ? undefined : process.env[env])
  if (v === undefined || v === '') throw new UsageError(`missing --${flag}${env === undefined ? '' : ` (or ${env})`}`)
  return v
}

function farmOptions(values: { rpc?: string; token?: string }): Pick<FarmClientOptions, 'rpcUrl' | 'token'> {
  return { rpcUrl: required(values.rpc, 'rpc', 'ILP_FARM_RPC_URL'), token: required(values.token, 'token', 'ILP_FARM_TOKEN') }
}

function positiveInteger(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a whole number`)
  return Number(value)
}

/** Resolves on the first SIGINT or SIGTERM. */
function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'))
    process.once('SIGTERM', () => resolve('SIGTERM'))
  })
}

const farmFlags = { rpc: { type: 'string' }, token: { type: 'string' } } as const

const endpointFlags = { 'tunnel-host': { type: 'string' }, subdomain: { type: 'string' }, 'no-tunnel': { type: 'boolean' }, port: { type: 'string' } } as const

/** The client's endpoint options from --tunnel-host/--subdomain/--no-tunnel/--port. */
function endpointOptions(values: { 'tunnel-host'?: string; subdomain?: string; 'no-tunnel'?: boolean; port?: string }): Partial<FarmClientOptions> {
  const host = values['tunnel-host'] ?? process.env.ILP_FARM_TUNNEL_HOST
  return {
    tunnel: values['no-tunnel'] ? false : { host, subdomain: values.subdomain },
    localPort: positiveInteger(values.port, 'port'),
  }
}

async function receive(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { ...farmFlags, ...endpointFlags } })
  const client = new FarmClient({ ...farmOptions(values), ...endpointOptions(values) })
  client.on('tunnel-open', ({ url }) => console.log(`tunnel: ${url}`))
  client.on('tunnel-closed', ({ reason }) => console.log(`tunnel closed: ${reason}; re-opening`))
  client.on('tunnel-error', (err) => console.log(`tunnel: ${err.message}; retrying`))
  client.on('registered', ({ url }) => console.log(`registered: ${url}`))
  client.onMoney((m) => console.log(`received: ${m.amount} (total ${m.totalReceived})`))
  const stopped = untilSignal()
  await client.start()
  const { destinationAccount, sharedSecretBase64 } = await client.receive()
  console.log(`destination: ${destinationAccount}`)
  console.log(`secret: ${sharedSecretBase64}`)
  if (client.spspUrl !== undefined) console.log(`spsp: ${client.spspUrl}`)
  console.log(`asset: ${client.account.assetCode} (scale ${client.account.assetScale})`)
  await stopped
  await client.stop()
  console.log(`stopped; received ${client.totalReceived} in all`)
  return 0
}

function progressBar(): { update(p: PaymentProgress): void; stop(): void } {
  const bar = new cliProgress.SingleBar(
    { format: 'paying [{bar}] {percentage}% | sent {sent}/{total} | delivered {delivered}', hideCursor: true },
    cliProgress.Presets.shades_classic,
  )
  // Amounts may exceed 2^53: the bar counts per mille, the exact values travel as strings.
  bar.start(1000, 0, { sent: '0', total: '?', delivered: '0' })
  return {
    update(p) {
      const total = BigInt(p.total)
      bar.update(total === 0n ? 1000 : Number((BigInt(p.sent) * 1000n) / total), { ...p })
    },
    stop: () => bar.stop(),
  }
}

async function pay(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      ...farmFlags,
      to: { type: 'string' },
      secret: { type: 'string' },
      spsp: { type: 'string' },
      amount: { type: 'string' },
      timeout: { type: 'string' },
    },
  })
  const farm = farmOptions(values)
  const amount = required(values.amount, 'amount')
  if (!/^\d+$/.test(amount)) throw new UsageError('--amount must be a whole number of base units')
  let target: PaymentTarget
  if (values.spsp !== undefined) target = { spspUrl: values.spsp }
  else target = { destinationAccount: required(values.to, 'to'), sharedSecret: required(values.secret, 'secret') }
  // Sending must not touch the account's receiving registration: no endpoint, no RPC URL set or cleared.
  const client = new FarmClient({ ...farm, listen: false })
  await client.start()
  const bar = progressBar()
  try {
    const result = await client.pay(target, amount, { onProgress: (p) => bar.update(p), timeoutMs: (positiveInteger(values.timeout, 'timeout') ?? 60) * 1000 })
    bar.stop()
    console.log(`paid: sent ${result.sent}, delivered ${result.delivered} to ${result.destinationAccount}`)
    return 0
  } catch (err) {
    bar.stop()
    if (!(err instanceof PaymentError)) throw err
    console.error(`payment failed: ${err.message} (sent ${err.sent}, delivered ${err.delivered})`)
    return 1
  } finally {
    await client.stop()
  }
}

async function balance(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: farmFlags })
  const { rpcUrl, token } = farmOptions(values)
  const rpc = new FarmRpc(rpcUrl, token)
  try {
    const [info, bal] = await Promise.all([rpc.getAccountInfo(), rpc.getBalance()])
    console.log(JSON.stringify({ ...info, ...bal }, null, 2))
    return 0
  } finally {
    await rpc.close()
  }
}

async function redeem(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { rpc: { type: 'string' }, ticket: { type: 'string' }, id: { type: 'string' } } })
  const account = await redeemTicket(required(values.rpc, 'rpc', 'ILP_FARM_RPC_URL'), required(values.ticket, 'ticket'), { id: values.id })
  console.log(JSON.stringify(account, null, 2))
  return 0
}

async function signup(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { rpc: { type: 'string' }, id: { type: 'string' }, threads: { type: 'string' } } })
  const account = await signUp(required(values.rpc, 'rpc', 'ILP_FARM_RPC_URL'), {
    id: values.id,
    threads: positiveInteger(values.threads, 'threads'),
    onChallenge: ({ difficulty }) => console.error(`solving a proof of work of ${difficulty} bits...`),
  })
  console.log(JSON.stringify(account, null, 2))
  return 0
}

const commands: Record<string, (args: string[]) => Promise<number>> = { receive, pay, balance, redeem, signup }

/** A farm's token or ticket: 256 bits in base64url. */
const FARM_SECRET = /^[A-Za-z0-9_-]{43}$/

/**
 * `--token <secret>` and `--ticket <secret>` as `--token=<secret>` when the
 * secret begins with "-", which parseArgs would take for an option. Farms
 * no longer issue such secrets, but tokens issued before may be in use.
 */
function secretValuesJoined(args: string[]): string[] {
  const joined: string[] = []
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!
    const next = args[i + 1]
    if ((arg === '--token' || arg === '--ticket') && next?.startsWith('-') === true && FARM_SECRET.test(next)) {
      joined.push(`${arg}=${next}`)
      i++
    } else joined.push(arg)
  }
  return joined
}

async function main(argv: string[]): Promise<number> {
  const [name, ...given] = argv
  const args = secretValuesJoined(given)
  if (name === undefined || name === '-h' || name === '--help' || args.includes('-h') || args.includes('--help')) {
    console.log(USAGE)
    return name === undefined ? 2 : 0
  }
  const command = commands[name]
  if (command === undefined) {
    console.error(`ilp-farm-client: unknown command ${name}\n\n${USAGE}`)
    return 2
  }
  try {
    return await command(args)
  } catch (err) {
    console.error(`ilp-farm-client ${name}: ${describeError(err)}`)
    return isUsageError(err) ? 2 : 1
  }
}

/** Bad flags: a UsageError of ours, or parseArgs' TypeError whose string code names the problem (ERR_PARSE_ARGS_UNKNOWN_OPTION, ...). */
function isUsageError(err: unknown): boolean {
  if (err instanceof UsageError) return true
  const code = (err as { code?: unknown } | null)?.code
  return err instanceof TypeError && typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS')
}

/**
 * The error as one line. A farm's refusal is its message plus what its
 * `data` names (the onboarding `reason`, the `ilpCode`): the message alone
 * may not say which of several causes it was.
 */
function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  if (!(err instanceof FarmRpcError)) return err.message
  const data = (typeof err.data === 'object' && err.data !== null ? err.data : {}) as { reason?: unknown; ilpCode?: unknown }
  const details = [
    ...(typeof data.reason === 'string' ? [`reason: ${data.reason}`] : []),
    ...(typeof data.ilpCode === 'string' ? [`ILP code ${data.ilpCode}`] : []),
  ]
  return details.length === 0 ? err.message : `${err.message} (${details.join(', ')})`
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
