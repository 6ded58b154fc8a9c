/**
 * STREAM demo against a running farm (`npm start`, config/example.yaml):
 * alice pays bob through the farm with a real STREAM payment.
 *
 *   npm run demo -- [amount]        (default 1000000 base units = 1 USD at scale 6)
 *
 * - bob: an ilp-plugin-http endpoint on 127.0.0.1:7782 (the farm's outgoing
 *   URL for bob) with a STREAM server that accepts any amount;
 * - alice: an ilp-plugin-http endpoint on 127.0.0.1:7781 and a STREAM client
 *   that sends `amount` to bob's address;
 * both talk to the farm at POST /accounts/{id}/ilp. Afterwards it prints what
 * bob's STREAM server received and both balances from GET /admin/accounts/{id}.
 *
 * Environment (same names and defaults as config/example.yaml):
 *   FARM_URL (http://127.0.0.1:7768), ILP_FARM_ADMIN_TOKEN, ALICE_TOKEN,
 *   ALICE_OUTGOING_TOKEN, BOB_TOKEN, BOB_OUTGOING_TOKEN
 */
import type { Server as HttpServer } from 'node:http'
import { createServer as createNetServer } from 'node:net'
import PluginHttpModule from 'ilp-plugin-http'
import { createConnection, createServer, DataAndMoneyStream } from 'ilp-protocol-stream'
import { request } from 'undici'
import 'ilp-farm-client/stream-compat'

const PluginHttp = PluginHttpModule.default
type PluginHttp = InstanceType<typeof PluginHttp>

const env = (name: string, fallback: string): string => {
  const value = process.env[name]
  return value === undefined || value === '' ? fallback : value
}

const FARM_URL = env('FARM_URL', 'http://127.0.0.1:7768').replace(/\/+$/, '')
const ADMIN_TOKEN = env('ILP_FARM_ADMIN_TOKEN', 'change-me-admin-token')

interface Party {
  id: 'alice' | 'bob'
  /** Where the farm sends this account's packets (its outgoing.url in config/example.yaml). */
  port: number
  /** What this side sends to the farm (the account's incoming.token). */
  tokenToFarm: string
  /** What the farm sends to this side (the account's outgoing.token). */
  tokenFromFarm: string
}

const ALICE: Party = {
  id: 'alice',
  port: 7781,
  tokenToFarm: env('ALICE_TOKEN', 'alice-secret-token'),
  tokenFromFarm: env('ALICE_OUTGOING_TOKEN', 'farm-to-alice-token'),
}
const BOB: Party = {
  id: 'bob',
  port: 7782,
  tokenToFarm: env('BOB_TOKEN', 'bob-secret-token'),
  tokenFromFarm: env('BOB_OUTGOING_TOKEN', 'farm-to-bob-token'),
}

class DemoError extends Error {}

function parseAmount(arg: string | undefined): bigint {
  const text = arg ?? '1000000'
  if (!/^[1-9][0-9]*$/.test(text) || BigInt(text) > 18446744073709551615n) {
    throw new DemoError(`amount must be a positive whole number of base units, got "${text}"`)
  }
  return BigInt(text)
}

interface AccountView {
  balance: string
  assetCode: string
  assetScale: number
}

async function getAccount(id: string): Promise<AccountView> {
  const res = await request(`${FARM_URL}/admin/accounts/${id}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
  const body = await res.body.text()
  if (res.statusCode !== 200) {
    throw new DemoError(`GET /admin/accounts/${id} answered ${res.statusCode}: ${body} (is ILP_FARM_ADMIN_TOKEN the farm's admin token?)`)
  }
  return JSON.parse(body) as AccountView
}

async function checkFarm(): Promise<void> {
  try {
    const res = await request(`${FARM_URL}/health`)
    await res.body.dump()
  } catch (err) {
    throw new DemoError(`no farm at ${FARM_URL} (${(err as Error).message}); start it first with \`npm start\``)
  }
}

/** The plugin's HTTP server listens on all interfaces; say so plainly when the port is taken. */
async function checkPortFree(party: Party): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createNetServer()
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(new DemoError(`port ${party.port} (${party.id}'s endpoint) is not free: ${err.code ?? err.message}`)),
    )
    probe.listen(party.port, () => probe.close(() => resolve()))
  })
}

interface Endpoint {
  plugin: PluginHttp
  close(): Promise<void>
}

function endpoint(party: Party): Endpoint {
  const plugin = new PluginHttp({
    incoming: { port: party.port, staticToken: party.tokenFromFarm },
    // staticToken (not secretToken) makes the plugin send "Authorization: Bearer <token>"
    outgoing: { url: `${FARM_URL}/accounts/${party.id}/ilp`, staticToken: party.tokenToFarm },
  })
  let closed: Promise<void> = Promise.resolve()
  let server: HttpServer | undefined
  plugin.on('connect', () => {
    server = (plugin as unknown as { _httpServer: HttpServer })._httpServer
    const s = server
    closed = new Promise<void>((resolve) => s.once('close', () => resolve()))
  })
  return {
    plugin,
    async close() {
      if (plugin.isConnected()) await plugin.disconnect()
      server?.closeAllConnections()
      await closed
    },
  }
}

function formatUnits(amount: bigint, scale: number, code: string): string {
  const negative = amount < 0n
  const digits = (negative ? -amount : amount).toString().padStart(scale + 1, '0')
  const whole = digits.slice(0, digits.length - scale)
  const fraction = scale > 0 ? `.${digits.slice(digits.length - scale)}` : ''
  return `${negative ? '-' : ''}${whole}${fraction} ${code}`
}

async function main(): Promise<number> {
  const amount = parseAmount(process.argv[2])
  await checkFarm()
  const [aliceBefore, bobBefore] = await Promise.all([getAccount('alice'), getAccount('bob')])
  const units = (n: bigint) => `${n} (${formatUnits(n, aliceBefore.assetScale, aliceBefore.assetCode)})`
  await Promise.all([checkPortFree(ALICE), checkPortFree(BOB)])

  const bob = endpoint(BOB)
  const alice = endpoint(ALICE)
  let received = 0n
  let packets = 0
  let sendError: Error | undefined
  try {
    const server = await createServer({ plugin: bob.plugin })
    server.on('connection', (connection) => {
      connection.on('stream', (stream: DataAndMoneyStream) => {
        stream.setReceiveMax(Infinity)
        stream.on('money', (got: string) => {
          received += BigInt(got)
          packets++
        })
      })
    })
    const { destinationAccount, sharedSecret } = server.generateAddressAndSecret()
    console.log(`bob's STREAM server: ${destinationAccount} (through ${FARM_URL})`)

    const connection = await createConnection({ plugin: alice.plugin, destinationAccount, sharedSecret })
    console.log(`alice connected as ${connection.sourceAccount}; sending ${units(amount)} ...`)
    const stream = connection.createStream()
    const started = Date.now()
    try {
      await stream.sendTotal(amount.toString(), { timeout: 30_000 })
    } catch (err) {
      sendError = err as Error
    }
    console.log(`alice sent ${stream.totalSent} in ${Date.now() - started} ms${sendError ? ` and stopped: ${sendError.message}` : ''}`)
    if (sendError) {
      await connection.destroy()
      await server.close()
    } else {
      // bob first: his side of the connection probes the exchange rate back to alice
      // after the first packet, and ilp-protocol-stream's end() waits for that probe,
      // which only succeeds while alice's side is still up.
      await server.close()
      await connection.end()
    }
  } finally {
    await alice.close()
    await bob.close()
  }

  const [aliceAfter, bobAfter] = await Promise.all([getAccount('alice'), getAccount('bob')])
  const aliceDelta = BigInt(aliceAfter.balance) - BigInt(aliceBefore.balance)
  const bobDelta = BigInt(bobAfter.balance) - BigInt(bobBefore.balance)
  console.log(`bob received ${units(received)} in ${packets} packet${packets === 1 ? '' : 's'}`)
  console.log(`alice balance: ${aliceBefore.balance} -> ${aliceAfter.balance} (${aliceDelta >= 0n ? '+' : ''}${aliceDelta})`)
  console.log(`bob balance:   ${bobBefore.balance} -> ${bobAfter.balance} (${bobDelta >= 0n ? '+' : ''}${bobDelta})`)
  const consistent = aliceDelta === -received && bobDelta === received
  const complete = !sendError && received === amount
  if (!consistent) console.log('MISMATCH: the balances did not move by what bob received')
  else if (!complete) console.log(`incomplete: bob got ${received} of ${amount}; the balances moved by exactly that`)
  else console.log('ok: the balances moved by exactly the amount bob received')
  return consistent && complete ? 0 : 1
}

// Exit explicitly: after a payment cut short by T04s, ilp-protocol-stream keeps
// its retry back-off timer (up to tens of seconds) running past destroy().
main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`demo: ${err instanceof DemoError ? err.message : ((err as Error).stack ?? String(err))}`)
    process.exit(1)
  },
)
