import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type EmbeddedRedis, freePort, startEmbeddedRedis } from '../../src/farm/embedded-redis.js'
import { account, adminGet, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { type Receiver, runLoad, type SentPacket, startReceiver, summarize, sum } from '../helpers/load.js'
import { recordsLeft } from '../helpers/in-flight.js'

/**
 * Redis stopped and started again (same port, same append-only data) while
 * two workers are under load: packets get T00 quickly while it is down, the
 * farm comes back by itself, and no unit of value drifts.
 */

const PREFIX = 'outage:'
const EXPIRES_IN_MS = 4_000
const MAX_HOLD_MS = 2_000
const BEFORE_MS = 2_500
const DOWN_MS = 4_000 // longer than the heartbeat TTL: the heartbeats are gone when Redis comes back
const AFTER_MS = 5_000
const RECOVERY_MS = 4_000

let dataDir: string
let port: number
let redis: EmbeddedRedis | undefined
let receiver: Receiver
const farms: TestFarm[] = []

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const startRedis = () => startEmbeddedRedis({ dataDir, port, appendonly: true })

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'ilp-farm-outage-'))
  port = await freePort()
  redis = await startRedis()
  receiver = await startReceiver(40)
})

afterAll(async () => {
  for (const farm of farms) await farm.close().catch(() => undefined)
  await receiver?.close()
  await redis?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

describe('Redis stop and start during load', () => {
  it(
    'T00 within the latency bound while Redis is down, service back within seconds after, no balance drift',
    async () => {
      const accounts = [
        account('sender', { minBalance: '-1000000000000' }),
        account('receiver', { relation: 'peer', outgoing: { url: receiver.url }, routes: ['test.receiver'] }),
      ]
      const extra = { redis: { keyPrefix: PREFIX }, maxHoldTimeMs: MAX_HOLD_MS, minMessageWindowMs: 500 }
      // Two workers (shards 0 and 1) of one farm, in this process, sharing the key prefix.
      for (const shard of [0, 1]) farms.push(await startTestFarm(redis!.url, accounts, extra, { shard }))

      const t0 = Date.now()
      let stoppedAt = 0
      let restartedAt = 0
      const outage = (async () => {
        await sleep(BEFORE_MS)
        await redis!.stop() // SIGTERM: Redis writes its append-only file and exits
        stoppedAt = Date.now()
        await sleep(DOWN_MS)
        redis = await startRedis() // same port, same data folder
        restartedAt = Date.now()
      })()
      const load = (farm: TestFarm) =>
        runLoad({
          farmUrl: farm.url,
          account: 'sender',
          token: 'sender-token',
          destination: 'test.receiver.bob',
          concurrency: 4,
          durationMs: BEFORE_MS + DOWN_MS + AFTER_MS,
          expiresInMs: EXPIRES_IN_MS,
          pauseAfterRejectMs: 5,
        })
      const sent: SentPacket[] = (await Promise.all(farms.map(load))).flat()
      await outage
      const loadEnded = Date.now()

      const client = new Redis(redis!.url)
      try {
        const lastExpiry = Math.max(...sent.map((p) => p.sentAt)) + EXPIRES_IN_MS
        let emptyAt: number | undefined
        while (Date.now() < lastExpiry + 15_000) {
          if ((await recordsLeft(client, PREFIX)) === 0 && Date.now() > lastExpiry) {
            emptyAt = Date.now()
            break
          }
          await sleep(100)
        }
        const balance = async (id: string) => {
          const fields = await client.hgetall(`${PREFIX}{acct:${id}}`)
          return Object.entries(fields)
            .filter(([f]) => f === 'cold' || f.startsWith('hot:'))
            .reduce((acc, [, v]) => acc + BigInt(v), 0n)
        }
        const senderBalance = await balance('sender')
        const receiverBalance = await balance('receiver')

        const down = sent.filter((p) => p.sentAt > stoppedAt && p.sentAt < restartedAt)
        const firstBack = sent.filter((p) => p.sentAt > restartedAt && p.outcome === 'fulfill').sort((a, b) => a.sentAt - b.sentAt)[0]
        const settled = sent.filter((p) => p.sentAt > restartedAt + RECOVERY_MS)
        const latencies = (ps: SentPacket[]) => ps.map((p) => p.doneAt - p.sentAt)
        const workers = await adminGet<{ leader: string | null; workers: Array<{ shard: number }> }>(farms[0]!.url, '/admin/workers')
        console.log(
          `redis outage: ${sent.length} packets (${summarize(sent)}); down ${restartedAt - stoppedAt} ms: ${down.length} packets ` +
            `(${summarize(down)}), slowest answer ${Math.max(...latencies(down))} ms; first fulfill ${firstBack ? firstBack.sentAt - restartedAt : '-'} ms ` +
            `after the restart; hotSet empty ${emptyAt === undefined ? 'never' : `${emptyAt - lastExpiry} ms after the last expiry`}; ` +
            `balances sender ${senderBalance} receiver ${receiverBalance}; load ${loadEnded - t0} ms`,
        )

        // While Redis is down every packet is answered, with T00, and quickly (no hang, no queue).
        expect(down.length).toBeGreaterThan(20)
        for (const p of down) expect({ outcome: p.outcome, code: p.detail }).toEqual({ outcome: 'reject', code: 'T00' })
        expect(Math.max(...latencies(down))).toBeLessThan(3_000)
        // No request anywhere in the run hung.
        expect(Math.max(...latencies(sent))).toBeLessThan(3_000)

        // Service comes back by itself within a few seconds of Redis, and then stays normal.
        expect(firstBack).toBeDefined()
        expect(firstBack!.sentAt - restartedAt).toBeLessThan(RECOVERY_MS)
        expect(settled.length).toBeGreaterThan(20)
        expect(settled.every((p) => p.outcome === 'fulfill')).toBe(true)
        // Heartbeats and the lease are back too: both workers live, one of them leader.
        expect(workers.json.workers.map((w) => w.shard)).toEqual([0, 1])
        expect(farms.map((f) => f.worker.coordinator.bootId)).toContain(workers.json.leader)

        // No drift: nothing left in flight once every packet expired, and the balances sum to their start (0).
        expect(emptyAt).toBeDefined()
        expect(senderBalance + receiverBalance).toBe(0n)
        // The receiver was credited at least every fulfill the sender saw (a fulfill whose commit was
        // deferred while Redis was down landed afterwards), and at most what it fulfilled.
        const seen = sent.filter((p) => p.outcome === 'fulfill')
        for (const p of seen) expect(receiver.fulfilled.has(p.conditionHex)).toBe(true)
        expect(receiverBalance).toBeGreaterThanOrEqual(sum(seen.map((p) => p.amount)))
        expect(receiverBalance).toBeLessThanOrEqual(sum(receiver.fulfilled.values()))
        expect(farms.every((f) => f.worker.services.resolver.backlog === 0)).toBe(true)
      } finally {
        client.disconnect()
      }
    },
    90_000,
  )
})
