import { parseArgs } from 'node:util'
import { startTunnelServer } from '../../tunnel/server.js'
import { print, UsageError } from '../command.js'

/**
 * `ilp-farm tunnel-server`: the tunnel server (src/tunnel/server.ts) on its
 * own, for the farm's users whose clients sit behind NAT
 * (`ilp-farm-client receive --tunnel-host URL`). It is not part of a farm
 * process: it may run on another host, with a wildcard domain.
 */
export const TUNNEL_SERVER_SUMMARY: [string, string] = ['tunnel-server [options]', 'run a tunnel server for clients behind NAT (localtunnel protocol)']

export const TUNNEL_SERVER_USAGE = `Usage: ilp-farm tunnel-server [options]

A tunnel server for ilp-farm-client (the localtunnel protocol, plus a secret
per tunnel that every tunnel connection must show). It runs until SIGINT or SIGTERM.

Options:
  --port N             HTTP port (default 0: a free one)
  --host H             address to listen on (default 127.0.0.1; 0.0.0.0 for everyone)
  --domain D           also serve tunnels as <id>.D (needs wildcard DNS)
  --public-url URL     the server's URL as clients see it (behind a TLS proxy)
  --max-sockets N      connections per tunnel (default 10)
  -h, --help           show this help
`

function wholeNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag} must be a whole number`, 'tunnel-server')
  return Number(value)
}

/** Runs until SIGINT or SIGTERM, then closes the server: exit 0. */
export async function runTunnelServerCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      domain: { type: 'string' },
      'public-url': { type: 'string' },
      'max-sockets': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    print(TUNNEL_SERVER_USAGE)
    return 0
  }
  const server = await startTunnelServer({
    port: wholeNumber(values.port, 'port'),
    host: values.host,
    domain: values.domain,
    publicUrl: values['public-url'],
    maxSockets: wholeNumber(values['max-sockets'], 'max-sockets'),
  })
  print(`tunnel server listening on ${server.url}`)
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve())
    process.once('SIGTERM', () => resolve())
  })
  await server.close()
  return 0
}
