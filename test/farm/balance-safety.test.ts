import { randomInt } from 'node:crypto'
import { serializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Balance safety across shards: three workers (shards 0, 1, 2) share one
 * Redis and one account with a tight credit limit. Prepares of random sizes
 * land on all three at once while a watcher reads the account's hash (one
 * atomic HGETALL) as often as it can: at no observed moment may cold go below
 * minBalance, a hot balance below zero, or the balance below minBalance.
 */
const MIN_BALANCE = -50_000n
const PREFIX = 'safety:'

let redis: TestRedis
let sink: TestPeer
const workers: TestFarm[] = []

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
  for (const shard of [0, 1, 2]) {
    workers.push(
      await startTestFarm(
        redis.url,
        [
          account('tight', { minBalance: MIN_BALANCE.toString(), parallelism: 3 }),
          account('sink', { relation: 'peer', outgoing: { url: sink.url }, routes: ['test.sink'] }),
        ],
        { redis: { keyPrefix: PREFIX } },
        { shard },
      ),
    )
  }
})

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()))
  await sink?.close()
  await redis?.close()
})

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

    let fulfilled = 0n
    const codes = new Map<string, number>()
    await Promise.all(
      Array.from({ length: 600 }, async (_, i) => {
        const amount = BigInt(randomInt(1, 1001))
        const prepare = prepareTo('test.sink.x', amount.toString(), knownCondition(), 10_000)
        if (i % 5 === 0) prepare.data = Buffer.from('reject')
        const res = await sendIlp(workers[i % 3]!.url, 'tight', prepare)
        const key = res.packet?.type === 13 ? 'fulfill' : ((res.packet?.data as { code?: string })?.code ?? `http ${res.status}`)
        codes.set(key, (codes.get(key) ?? 0) + 1)
        if (res.packet?.type === 13) fulfilled += amount
      }),
    )
    watching = false
    await watcher

    expect(violations).toEqual([])
    expect(observations).toBeGreaterThan(20)
    // the limit was really hit, and nothing but fulfill, the downstream reject and T04 happened
    expect(codes.get('T04') ?? 0).toBeGreaterThan(0)
    expect([...codes.keys()].sort()).toEqual(['F99', 'T04', 'fulfill'])
    const { json } = await adminGet<Array<{ id: string; balance: string; hot: Record<string, string> }>>(workers[0]!.url, '/admin/accounts')
    const tight = json.find((a) => a.id === 'tight')!
    const sinkAccount = json.find((a) => a.id === 'sink')!
    expect(BigInt(tight.balance)).toBe(-fulfilled)
    expect(BigInt(sinkAccount.balance)).toBe(fulfilled)
    expect(BigInt(tight.balance)).toBeGreaterThanOrEqual(MIN_BALANCE)
    // the packets really were spread over the shards' hot balances
    expect(Object.keys(tight.hot).length).toBeGreaterThan(1)
    expect((await adminGet(workers[0]!.url, '/admin/hotset')).json).toEqual([])
  })
})
