import { createRequire } from 'node:module'
import { type Connection, createConnection, type Server } from 'ilp-protocol-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import 'ilp-farm-client/stream-compat'
import { account, adminGet, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startStreamReceiver } from '../helpers/stream.js'
import { createPlugin, freePort, PluginHttp, type TestPlugin } from '../helpers/plugin-http.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Interop with the reference connector: ilp-connector 23 (in this process,
 * its createApp API) peers with the farm over ilp-plugin-http, and both
 * exchange routes by CCP. Neither has a static route (nor a default route)
 * for the other's prefix: a STREAM payment from a child of ilp-connector to
 * a child of the farm, and one the other way, go by learned routes only.
 *
 * ilp-connector's dist/index.js starts a connector from the environment when
 * `module.parent` is unset, which is the case when Node's ESM loader imports
 * it: so its app module is required directly.
 */

interface ConnectorApp {
  listen(): Promise<void>
  shutdown(): Promise<void>
}
const require = createRequire(import.meta.url)
const createApp = (require('ilp-connector/dist/app') as { default: (opts: object) => ConnectorApp }).default

const CONNECTOR_ADDRESS = 'test.conn'
const INTERVAL = 300

let redis: TestRedis
let farm: TestFarm
let connector: ConnectorApp | undefined
const ports = { farmPlugin: 0, connAlice: 0, alice: 0, connDave: 0, dave: 0, bob: 0, carol: 0 }
const plugins: TestPlugin[] = []
const servers: Server[] = []
const connections: Connection[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  for (const key of Object.keys(ports) as Array<keyof typeof ports>) ports[key] = await freePort()
  // the farm: two children, one peer (the connector) with CCP both ways
  farm = await startTestFarm(
    redis.url,
    [
      account('bob', { outgoing: { url: `http://127.0.0.1:${ports.bob}/`, token: 'farm-to-bob' } }),
      account('carol', { minBalance: '-5000000', outgoing: { url: `http://127.0.0.1:${ports.carol}/`, token: 'farm-to-carol' } }),
      account('conn', {
        relation: 'peer',
        minBalance: '-5000000',
        incoming: { token: 'conn-to-farm' },
        outgoing: { url: `http://127.0.0.1:${ports.farmPlugin}/`, token: 'farm-to-conn' },
        sendRoutes: true,
        receiveRoutes: true,
      }),
    ],
    { routing: { broadcastIntervalMs: INTERVAL } },
  )
  const child = (id: string, port: number, pluginPort: number) => ({
    relation: 'child',
    plugin: 'ilp-plugin-http',
    assetCode: 'USD',
    assetScale: 6,
    options: {
      incoming: { port, staticToken: `${id}-to-conn` },
      outgoing: { url: `http://127.0.0.1:${pluginPort}/`, staticToken: `conn-to-${id}` },
    },
  })
  connector = createApp({
    env: 'test',
    ilpAddress: CONNECTOR_ADDRESS,
    backend: 'one-to-one',
    spread: 0,
    store: 'memory',
    defaultRoute: '', // no default route: the farm is reachable only by what it announces
    routes: [],
    routeBroadcastInterval: INTERVAL,
    accounts: {
      farm: {
        relation: 'peer',
        plugin: 'ilp-plugin-http',
        assetCode: 'USD',
        assetScale: 6,
        sendRoutes: true,
        receiveRoutes: true,
        options: {
          incoming: { port: ports.farmPlugin, staticToken: 'farm-to-conn' },
          outgoing: { url: `${farm.url}/accounts/conn/ilp`, staticToken: 'conn-to-farm' },
        },
      },
      alice: child('alice', ports.connAlice, ports.alice),
      dave: child('dave', ports.connDave, ports.dave),
    },
  })
  await connector.listen()
})

afterAll(async () => {
  await Promise.allSettled(connections.map((c) => c.destroy()))
  await Promise.allSettled(servers.map((s) => s.close()))
  await farm?.close()
  await connector?.shutdown()
  await Promise.allSettled(plugins.map((p) => p.close()))
  await redis?.close()
})

async function eventually(check: () => boolean, withinMs: number): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** A plugin for a child of ilp-connector (alice, dave). */
function connectorChild(id: 'alice' | 'dave'): TestPlugin {
  const plugin = new PluginHttp({
    incoming: { port: id === 'alice' ? ports.alice : ports.dave, staticToken: `conn-to-${id}` },
    outgoing: { url: `http://127.0.0.1:${id === 'alice' ? ports.connAlice : ports.connDave}/`, staticToken: `${id}-to-conn` },
  })
  const sent: TestPlugin['sent'] = []
  const p: TestPlugin = {
    plugin,
    sent,
    async close() {
      if (plugin.isConnected()) await plugin.disconnect()
    },
  }
  plugins.push(p)
  return p
}

/** A plugin for a child of the farm (bob, carol). */
function farmChild(id: 'bob' | 'carol'): TestPlugin {
  const p = createPlugin({ port: ports[id], farmUrl: farm.url, accountId: id, outgoingToken: `${id}-token`, incomingToken: `farm-to-${id}` })
  plugins.push(p)
  return p
}

/** STREAM: `amount` from the sender plugin to a server on the receiver plugin; returns what the receiver counted and the addresses. */
async function pay(sender: TestPlugin, receiver: TestPlugin, amount: number): Promise<{ received: bigint; from: string; to: string }> {
  const streamReceiver = await startStreamReceiver(receiver.plugin)
  const { server, accepted, destinationAccount, sharedSecret } = streamReceiver
  servers.push(server)
  // ilp-connector knows the farm's prefix only once an update of ours reached it: retry the handshake (no money) until then
  const start = Date.now()
  let connection: Connection | undefined
  while (!connection) {
    try {
      connection = await createConnection({ plugin: sender.plugin, destinationAccount, sharedSecret })
    } catch (err) {
      if (Date.now() - start > 15_000) throw err
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  connections.push(connection)
  const stream = connection.createStream()
  await stream.sendTotal(amount, { timeout: 20_000 })
  expect(stream.totalSent).toBe(String(amount))
  await accepted
  await server.close()
  await connection.end()
  return { received: streamReceiver.received(), from: connection.sourceAccount, to: destinationAccount }
}

describe('interop with ilp-connector 23 (CCP over ilp-plugin-http)', () => {
  it('the farm learns the connector’s address from its route updates (and not its children one by one)', async () => {
    await eventually(() => farm.worker.services.routes.table.get(CONNECTOR_ADDRESS)?.candidates.some((c) => c.info.source === 'learned') === true, 15_000)
    const candidate = farm.worker.services.routes.table.get(CONNECTOR_ADDRESS)!.candidates[0]!
    expect(candidate.accountId).toBe('conn')
    expect(candidate.info.path).toEqual([CONNECTOR_ADDRESS])
    expect(farm.config.routes).toEqual([])
    expect(farm.config.accounts.flatMap((a) => a.routes)).toEqual([])
  })

  it('a STREAM payment from a child of ilp-connector reaches a child of the farm', async () => {
    const alice = connectorChild('alice')
    const bob = farmChild('bob')
    const result = await pay(alice, bob, 400_000)
    expect(result.from).toBe(`${CONNECTOR_ADDRESS}.alice`)
    expect(result.to.startsWith(`${FARM_ADDRESS}.bob.`)).toBe(true)
    expect(result.received).toBe(400_000n)
    expect(await balanceOf(farm.url, 'conn')).toBe('-400000') // the connector owes the farm
    expect(await balanceOf(farm.url, 'bob')).toBe('400000')
  })

  it('and one from a child of the farm reaches a child of ilp-connector', async () => {
    const carol = farmChild('carol')
    const dave = connectorChild('dave')
    const result = await pay(carol, dave, 300_000)
    expect(result.from).toBe(`${FARM_ADDRESS}.carol`)
    expect(result.to.startsWith(`${CONNECTOR_ADDRESS}.dave.`)).toBe(true)
    expect(result.received).toBe(300_000n)
    const paid = carol.sent.filter((p) => p.result === 'fulfill' && p.destination !== 'peer.config')
    expect(paid.every((p) => p.destination.startsWith(`${CONNECTOR_ADDRESS}.dave.`))).toBe(true)
    expect(await balanceOf(farm.url, 'carol')).toBe('-300000')
    expect(await balanceOf(farm.url, 'conn')).toBe('-100000') // -400000 + 300000
    expect((await adminGet<unknown[]>(farm.url, '/admin/hotset')).json).toEqual([])
  })
})
