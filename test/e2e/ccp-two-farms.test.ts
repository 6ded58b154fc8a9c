import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type Connection, createConnection, type Server } from 'ilp-protocol-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import 'ilp-farm-client/stream-compat'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { account, adminGet, balanceOf, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startStreamReceiver } from '../helpers/stream.js'
import { createPlugin, freePort, type TestPlugin } from '../helpers/plugin-http.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Two farms, A on one Redis and B on a Redis Cluster (3 masters, loopback), peered with each other over
 * ILP-over-HTTP with route announcements both ways and no static route to
 * each other: each learns the other's address (its children behind it), and
 * a STREAM payment from a child of A to a child of B crosses both.
 */

const INTERVAL = 300

let redisA: TestRedis
let clusterB: LocalCluster
let farmA: TestFarm
let farmB: TestFarm
const plugins: TestPlugin[] = []
let server: Server | undefined
let connection: Connection | undefined
let alicePort = 0
let bobPort = 0

beforeAll(async () => {
  redisA = await startTestRedis()
  clusterB = await startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-ccp-b-')), masters: 3, replicasPerMaster: 0 })
  const [portA, portB] = [await freePort(), await freePort()]
  alicePort = await freePort()
  bobPort = await freePort()
  const routing = { broadcastIntervalMs: INTERVAL }
  farmA = await startTestFarm(
    redisA.url,
    [
      account('alice', { minBalance: '-5000000', outgoing: { url: `http://127.0.0.1:${alicePort}/`, token: 'farm-to-alice' } }),
      account('farmb', {
        relation: 'peer',
        incoming: { token: 'b-to-a' },
        outgoing: { url: `http://127.0.0.1:${portB}/accounts/farma/ilp`, token: 'a-to-b' },
        sendRoutes: true,
        receiveRoutes: true,
      }),
    ],
    { ilpAddress: 'test.farma', http: { host: '127.0.0.1', port: portA }, routing },
  )
  farmB = await startTestFarm(
    { cluster: [...clusterB.seeds] },
    [
      // Credit for bob: his STREAM server probes the exchange rate back to alice as soon as she connects,
      // and with no balance yet every probe would get T04 until her money arrived (the connection then fails).
      account('bob', { minBalance: '-5000000', outgoing: { url: `http://127.0.0.1:${bobPort}/`, token: 'farm-to-bob' } }),
      account('farma', {
        relation: 'peer',
        minBalance: '-5000000',
        incoming: { token: 'a-to-b' },
        outgoing: { url: `http://127.0.0.1:${portA}/accounts/farmb/ilp`, token: 'b-to-a' },
        sendRoutes: true,
        receiveRoutes: true,
      }),
    ],
    { ilpAddress: 'test.farmb', http: { host: '127.0.0.1', port: portB }, routing },
  )
})

afterAll(async () => {
  await connection?.destroy().catch(() => undefined)
  await server?.close().catch(() => undefined)
  await farmA?.close()
  await farmB?.close()
  await Promise.allSettled(plugins.map((p) => p.close()))
  await redisA?.close()
  await clusterB?.stop()
})

async function eventually(check: () => boolean, withinMs: number): Promise<void> {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

function learned(farm: TestFarm, prefix: string, via: string): boolean {
  const entry = farm.worker.services.routes.table.get(prefix)
  return entry?.candidates.some((c) => c.accountId === via && c.info.source === 'learned') === true
}

async function allBalances(farm: TestFarm): Promise<Record<string, string>> {
  const { json } = await adminGet<{ accounts: Array<{ id: string; balance: string }> }>(farm.url, '/admin/accounts?limit=1000')
  return Object.fromEntries(json.accounts.map((a) => [a.id, a.balance]))
}

describe('two farms learn each other by CCP', () => {
  it('learns the other farm (and so its children) and nothing else, with no static route', async () => {
    await eventually(() => learned(farmA, 'test.farmb', 'farmb') && learned(farmB, 'test.farma', 'farma'), 10_000)
    expect(farmA.config.routes).toEqual([])
    expect(farmA.config.accounts.flatMap((a) => a.routes)).toEqual([])
    expect(farmB.config.accounts.flatMap((a) => a.routes)).toEqual([])
    const candidate = farmA.worker.services.routes.table.get('test.farmb')!.candidates[0]!
    expect(candidate.info.path).toEqual(['test.farmb'])
    // its own routes coming back through the other farm are loops: dropped
    expect(farmA.worker.services.routes.table.get('test.farma')).toBeUndefined()
    // its children need no table entry: they are routed by address, under the farm's own announced prefix
    expect(farmA.worker.services.routes.table.get('test.farma.alice')).toBeUndefined()
    expect(farmA.worker.services.routes.lookup('test.farma.alice.x')?.candidates.map((c) => [c.accountId, c.info.source])).toEqual([['alice', 'address']])
  })

  it('a STREAM payment from a child of A reaches a child of B, balances exact on both sides', async () => {
    const alice = createPlugin({ port: alicePort, farmUrl: farmA.url, accountId: 'alice', outgoingToken: 'alice-token', incomingToken: 'farm-to-alice' })
    const bob = createPlugin({ port: bobPort, farmUrl: farmB.url, accountId: 'bob', outgoingToken: 'bob-token', incomingToken: 'farm-to-bob' })
    plugins.push(alice, bob)
    const receiver = await startStreamReceiver(bob.plugin)
    server = receiver.server
    const { accepted, destinationAccount, sharedSecret } = receiver
    expect(destinationAccount.startsWith('test.farmb.bob.')).toBe(true)
    connection = await createConnection({ plugin: alice.plugin, destinationAccount, sharedSecret })
    expect(connection.sourceAccount).toBe('test.farma.alice')
    const stream = connection.createStream()
    await stream.sendTotal(750_000, { timeout: 15_000 })
    expect(stream.totalSent).toBe('750000')
    expect(receiver.received()).toBe(750_000n)
    await accepted
    await server.close()
    await connection.end()
    await alice.close()
    await bob.close()

    // every packet went through the learned routes: A → farm B → bob
    const paid = alice.sent.filter((p) => p.result === 'fulfill' && p.destination !== 'peer.config')
    expect(paid.length).toBeGreaterThan(0)
    expect(paid.every((p) => p.destination.startsWith('test.farmb.bob.'))).toBe(true)
    expect(await balanceOf(farmA.url, 'alice')).toBe('-750000')
    expect(await balanceOf(farmA.url, 'farmb')).toBe('750000') // farm A owes farm B
    expect(await balanceOf(farmB.url, 'farma')).toBe('-750000') // farm A owes farm B, seen from B
    expect(await balanceOf(farmB.url, 'bob')).toBe('750000')
    for (const farm of [farmA, farmB]) {
      expect((await adminGet<unknown[]>(farm.url, '/admin/hotset')).json).toEqual([])
      expect(Object.values(await allBalances(farm)).reduce((s, b) => s + BigInt(b), 0n)).toBe(0n)
    }
  })
})
