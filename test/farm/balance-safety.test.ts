import { randomInt } from 'node:crypto'
import { serializeIlpReject } from 'ilp-packet'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { FarmConfigInput } from '../../src/config/schema.js'
import { cleanEnv, killAllClis, runCli } from '../helpers/cli.js'
import { account, ADMIN_TOKEN, adminGet, FARM_ADDRESS, prepareTo, sendIlp } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Balance safety across shards: the real farm (`ilp-farm start`, three worker
 * processes on one port) and one account with a tight credit limit. Prepares
 * of random sizes arrive on many connections, so on all three workers at once,
 * while a watcher reads the account's hash (one atomic HGETALL) as often as it
 * can: at no observed moment may cold go below minBalance, a hot balance below
 * zero, or the balance below minBalance.
 */
// credit for about two thirds of what the burst would fulfill: the limit is hit (T04), and late enough
// that each worker has reached the ledger with packets of its own by then
const MIN_BALANCE = -150_000n
const PREFIX = 'safety:'

let redis: TestRedis
let sink: TestPeer
let tmp: string
let farmUrl: string

beforeAll(async () => {
  redis = await startTestRedis()
  // fulfils after a short random delay; one packet in five is rejected (a refund to the shard's hot balance)
  sink = await startTestPeer(async (prepare) => {
    await new Promise((r) => setTimeout(r, randomInt(0, 20)))
    if (prepare.data.toString() === 'reject') {
      return serializeIlpReject({ code: 'F99', triggeredBy: 'test.sink', message: 'no', data: Buffer.alloc(0) })
    }
    return fulfillKnown(prepare)
  })
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-safety-'))
  const config: FarmConfigInput = {
    ilpAddress: FARM_ADDRESS,
    http: { host: '127.0.0.1', port: 0 },
    workers: 3,
    redis: { keyPrefix: PREFIX, dataDir: join(tmp, 'unused') },
    admin: { token: ADMIN_TOKEN },
    log: { level: 'warn' },
    accounts: [
      account('tight', { minBalance: MIN_BALANCE.toString(), parallelism: 3 }),
      account('sink', { relation: 'peer', outgoing: { url: sink.url }, routes: ['test.sink'] }),
    ],
  }
  const file = join(tmp, 'farm.yaml')
  writeFileSync(file, stringify(config))
  const run = runCli(['start', '--config', file], { env: cleanEnv({ REDIS_URL: redis.url }) })
  const [, url] = await run.waitFor(/listening on (http:\/\/\S+)/, 45_000)
  farmUrl = url!
  // the first worker to listen says so: wait until all three answer, or a burst could find one alone
  const shards = new Set<string>()
  const deadline = Date.now() + 30_000
  while (shards.size < 3 && Date.now() < deadline) {
    const client = new Client(farmUrl, { pipelining: 1 })
    const health = await client.request({ path: '/health', method: 'GET' }).catch(() => undefined)
    if (health) {
      shards.add(String(health.headers['x-ilp-farm-shard']))
      await health.body.dump()
    }
    await client.close()
  }
  expect(shards.size).toBe(3)
}, 90_000)

afterAll(async () => {
  await killAllClis()
  await sink?.close()
  await redis?.close()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

/** `count` open connections to each of `workers` workers (by the shard /health names), the rest closed. */
async function connectionsPerWorker(url: string, workers: number, count: number): Promise<Client[][]> {
  const byShard = new Map<string, Client[]>()
  const spare: Client[] = []
  const full = () => byShard.size === workers && [...byShard.values()].every((list) => list.length >= count)
  const deadline = Date.now() + 60_000
  while (!full()) {
    if (Date.now() > deadline) throw new Error(`connections per worker after 60 s: ${[...byShard].map(([s, l]) => `${s}: ${l.length}`).join(', ')}`)
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const client = new Client(url, { pipelining: 1 })
        const health = await client.request({ path: '/health', method: 'GET' })
        await health.body.dump()
        const shard = String(health.headers['x-ilp-farm-shard'])
        const list = byShard.get(shard) ?? []
        byShard.set(shard, list)
        if (list.length < count) list.push(client)
        else spare.push(client)
      }),
    )
  }
  await Promise.all(spare.map((c) => c.close()))
  return [...byShard.values()]
}

describe('balance safety across workers', () => {
  it('never lets concurrent prepares on three shards take the account below minBalance; final balances exact', async () => {
    const violations: string[] = []
    let observations = 0
    let watching = true
    const watcher = (async () => {
      while (watching) {
        const fields = await redis.client.hgetall(`${PREFIX}{acct:tight}`)
        observations++
        let balance = 0n
        for (const [field, value] of Object.entries(fields)) {
          if (field === 'cold') {
            balance += BigInt(value)
            if (BigInt(value) < MIN_BALANCE) violations.push(`cold ${value}`)
          } else if (field.startsWith('hot:')) {
            balance += BigInt(value)
            if (BigInt(value) < 0n) violations.push(`${field} ${value}`)
          }
        }
        if (balance < MIN_BALANCE) violations.push(`balance ${balance}`)
        await new Promise((r) => setImmediate(r))
      }
    })()

    // The workers accept connections from the shared socket themselves, so the kernel decides which one
    // serves a connection: a burst of new ones may all land on one worker. The connections are opened
    // first, each asking /health which worker it reached, until each worker has its share; the packets
    // then go out at once, each on a connection of its own, the workers' turns interleaved.
    const connections = await connectionsPerWorker(farmUrl, 3, 200)
    let fulfilled = 0n
    const codes = new Map<string, number>()
    const byWorker = connections.map(() => new Map<string, number>())
    await Promise.all(
      Array.from({ length: 600 }, async (_, i) => {
        const amount = BigInt(randomInt(1, 1001))
        const prepare = prepareTo('test.sink.x', amount.toString(), knownCondition(), 10_000)
        if (i % 5 === 0) prepare.data = Buffer.from('reject')
        const res = await sendIlp(farmUrl, 'tight', prepare, { dispatcher: connections[i % 3]![Math.floor(i / 3)] })
        const key = res.packet?.type === 13 ? 'fulfill' : ((res.packet?.data as { code?: string })?.code ?? `http ${res.status}`)
        codes.set(key, (codes.get(key) ?? 0) + 1)
        byWorker[i % 3]!.set(key, (byWorker[i % 3]!.get(key) ?? 0) + 1)
        if (res.packet?.type === 13) fulfilled += amount
      }),
    )
    watching = false
    await watcher
    await Promise.all(connections.flat().map((c) => c.close()))

    expect(violations).toEqual([])
    expect(observations).toBeGreaterThan(20)
    // the limit was really hit, and nothing but fulfill, the downstream reject and T04 happened
    expect(codes.get('T04') ?? 0).toBeGreaterThan(0)
    expect([...codes.keys()].sort()).toEqual(['F99', 'T04', 'fulfill'])
    const { json } = await adminGet<{ accounts: Array<{ id: string; balance: string; hot: Record<string, string> }> }>(farmUrl, '/admin/accounts?limit=1000')
    const tight = json.accounts.find((a) => a.id === 'tight')!
    const sinkAccount = json.accounts.find((a) => a.id === 'sink')!
    expect(BigInt(tight.balance)).toBe(-fulfilled)
    expect(BigInt(sinkAccount.balance)).toBe(fulfilled)
    expect(BigInt(tight.balance)).toBeGreaterThanOrEqual(MIN_BALANCE)
    // the packets really were spread over several workers' hot balances (a worker whose first packets came
    // after the others had leased all the credit has none)
    const perWorker = byWorker.map((m) => Object.fromEntries(m))
    expect(Object.keys(tight.hot).length, JSON.stringify({ hot: tight.hot, perWorker })).toBeGreaterThanOrEqual(2)
    expect((await adminGet(farmUrl, '/admin/hotset')).json).toEqual([])
  })
})
