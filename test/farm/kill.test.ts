import { randomInt } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { FarmConfigInput } from '../../src/config/schema.js'
import { cleanEnv, isRunning, killAllClis, runCli, sleep, workerPids } from '../helpers/cli.js'
import { eventually } from '../helpers/async.js'
import { ADMIN_TOKEN, adminGet } from '../helpers/farm.js'
import { type LedgerWatch, watchLedger } from '../helpers/ledger-monitor.js'
import { type Receiver, runLoad, startReceiver, summarize, sum } from '../helpers/load.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { recordsLeft } from '../helpers/in-flight.js'

/**
 * The kill test: the real `ilp-farm start` (supervisor + 2 cluster
 * workers) under sustained load, with workers SIGKILLed at random moments.
 * Once the longest expiry has passed, every unit of value must be accounted
 * for: nothing left in the hotSet, balances summing to their start (0), and
 * each balance reconciled with the fulfillments the receiver gave and the
 * sender saw.
 */

const PREFIX = 'kill:'
const LOAD_MS = 8_000
const CONCURRENCY = 12
const KILLS = 4
const EXPIRES_IN_MS = 4_000 // prepare expiry; the farm holds at most maxHoldTimeMs (2 s) of it
const MAX_HOLD_MS = 2_000

let redis: TestRedis
let receiver: Receiver
let watch: LedgerWatch | undefined
let tmp: string

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-kill-'))
  redis = await startTestRedis()
  receiver = await startReceiver(40)
})

afterAll(async () => {
  // Bulletproof cleanup: SIGKILL the CLI's process group and every process it started, whatever happened.
  await killAllClis()
  watch?.stop()
  await receiver?.close()
  await redis?.close()
  rmSync(tmp, { recursive: true, force: true })
})

describe('kill test', () => {
  it(
    'SIGKILLed workers under load lose and double-count nothing',
    async () => {
      const t0 = Date.now()
      const config: FarmConfigInput = {
        ilpAddress: 'test.farm',
        http: { host: '127.0.0.1', port: 0 },
        workers: 2,
        redis: { keyPrefix: PREFIX, dataDir: join(tmp, 'unused') },
        admin: { token: ADMIN_TOKEN },
        log: { level: 'warn' },
        maxHoldTimeMs: MAX_HOLD_MS,
        minMessageWindowMs: 500,
        accounts: [
          { id: 'sender', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000000000000', incoming: { token: 'sender-token' } },
          {
            id: 'receiver',
            relation: 'peer',
            assetCode: 'USD',
            assetScale: 6,
            outgoing: { url: receiver.url },
            routes: ['test.receiver'],
          },
        ],
      }
      const file = join(tmp, 'farm.yaml')
      writeFileSync(file, stringify(config))
      const run = runCli(['start', '--config', file], { env: cleanEnv({ REDIS_URL: redis.url }) })
      const [, url] = await run.waitFor(/listening on (http:\/\/\S+)/, 45_000)
      for (const pid of workerPids(run)) run.track(pid)
      expect(workerPids(run)).toHaveLength(2)
      // each worker listens to its replies, route changes and account changes over one subscribed connection
      const subscribed = async () => ((await redis.client.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).split('\n').filter((l) => l.trim() !== '').length
      await eventually(async () => expect(await subscribed()).toBe(2))
      watch = await watchLedger(redis.url, PREFIX, 'receiver')
      const started = Date.now()

      // SIGKILL a worker at random moments during the load; the supervisor restarts it. The first victim
      // is the leader (its pid from the heartbeats): another worker must take the lease over.
      const killed: number[] = []
      let leaderKilled: number | undefined
      const leaderPid = async () => {
        const { json } = await adminGet<{ workers: Array<{ pid: number; leader: boolean }> }>(url!, '/admin/workers').catch(() => ({
          json: { workers: [] },
        }))
        return json.workers.find((w) => w.leader)?.pid
      }
      const killer = (async () => {
        const slot = (LOAD_MS - 1500) / KILLS
        for (let i = 0; i < KILLS; i++) {
          const at = 700 + i * slot + randomInt(0, Math.floor(slot * 0.7))
          await sleep(Math.max(0, started + at - Date.now()))
          const live = workerPids(run)
          const leader = await leaderPid()
          const leaderLive = leader !== undefined && live.includes(leader)
          const victim = leaderKilled === undefined && leaderLive ? leader : live[randomInt(0, live.length)]
          if (victim === undefined) continue
          if (victim === leader) leaderKilled = victim
          process.kill(victim, 'SIGKILL')
          killed.push(victim)
        }
      })()
      const sent = await runLoad({
        farmUrl: url!,
        account: 'sender',
        token: 'sender-token',
        destination: 'test.receiver.bob',
        concurrency: CONCURRENCY,
        durationMs: LOAD_MS,
        expiresInMs: EXPIRES_IN_MS,
      })
      await killer
      const loadEnded = Date.now()
      const lastExpiry = Math.max(...sent.map((p) => p.sentAt)) + EXPIRES_IN_MS

      // Every worker was restarted by the supervisor, and the farm still serves.
      expect(killed).toHaveLength(KILLS)
      await run.waitFor(new RegExp(`(worker \\d exited \\(SIGKILL\\).*[\\s\\S]*){${KILLS}}`), 5_000)

      // Wait until the longest expiry has passed and the leader's sweeps have resolved what the dead workers left.
      // (A killed leader is replaced once its lease runs out, ~5 s; a killed worker's entries are its dead
      // incarnation's as soon as its shard beats again with a new boot id.)
      let emptyAt: number | undefined
      for (;;) {
        const left = await recordsLeft(redis.client, PREFIX)
        if (left === 0 && Date.now() > lastExpiry) {
          emptyAt = Date.now()
          break
        }
        if (Date.now() > lastExpiry + 15_000) break
        await sleep(100)
      }
      if (process.env.KILL_TEST_DEBUG) console.log(run.stdout(), run.stderr())
      // MONITOR lines trail the commands a little.
      await sleep(300)
      watch.stop()

      const fulfilledSeen = sent.filter((p) => p.outcome === 'fulfill')
      const committed = sent.filter((p) => watch!.committed.has(`sender|${p.packetId}`))
      const balances = async (id: string) => {
        const fields = await redis.client.hgetall(`${PREFIX}{acct:${id}}`)
        return Object.entries(fields)
          .filter(([f]) => f === 'cold' || f.startsWith('hot:'))
          .reduce((acc, [, v]) => acc + BigInt(v), 0n)
      }
      const senderBalance = await balances('sender')
      const receiverBalance = await balances('receiver')
      console.log(
        `kill test: ${sent.length} packets (${summarize(sent)}); killed ${killed.length} workers; ` +
          `committed ${watch.committed.size}, refunded ${watch.refunded.size}; receiver gave ${receiver.fulfilled.size} fulfills; ` +
          `hotSet empty ${emptyAt === undefined ? 'never' : `${emptyAt - lastExpiry} ms after the last expiry`}; ` +
          `load ${loadEnded - started} ms, whole test ${Date.now() - t0} ms`,
      )

      // 1. Nothing is left in flight once every packet has expired: the sweeper refunded what the dead workers held.
      expect(emptyAt).toBeDefined()

      // 2. Value is conserved: the balances sum to their starting value (0).
      expect(senderBalance + receiverBalance).toBe(0n)

      // 3. Every reservation was settled exactly once (committed or refunded, never both, never twice).
      expect([...watch.settlements.values()].every((n) => n === 1)).toBe(true)
      expect(watch.committed.size + watch.refunded.size).toBe(watch.prepared.size)
      expect([...watch.committed].some((f) => watch!.refunded.has(f))).toBe(false)

      // 4. The sender only saw fulfillments the receiver really gave (no forged or crossed replies) ...
      for (const p of fulfilledSeen) expect(receiver.fulfilled.has(p.conditionHex)).toBe(true)
      // ... and the farm committed only packets the receiver fulfilled ...
      for (const p of committed) expect(receiver.fulfilled.has(p.conditionHex)).toBe(true)
      // ... and every fulfill the sender saw was committed first (Redis never failed here, so no settle was deferred).
      for (const p of fulfilledSeen) expect(watch.committed.has(`sender|${p.packetId}`)).toBe(true)
      // The farm committed fulfills for packets only it saw too (the worker died after the commit, before answering).
      expect(committed.length).toBeGreaterThanOrEqual(fulfilledSeen.length)
      expect(watch.committed.size).toBe(committed.length)

      // 5. The balances are exactly the committed packets: the receiver was credited their amounts, the sender debited.
      const committedAmount = sum(committed.map((p) => p.amount))
      expect(receiverBalance).toBe(committedAmount)
      expect(senderBalance).toBe(-committedAmount)
      // Bounds from what the two ends saw: between what the sender saw fulfilled and what the receiver fulfilled.
      expect(receiverBalance).toBeGreaterThanOrEqual(sum(fulfilledSeen.map((p) => p.amount)))
      expect(receiverBalance).toBeLessThanOrEqual(sum(receiver.fulfilled.values()))

      // 6. The farm is whole again: two live workers (new boot ids for the killed shards), one of them leader,
      // and the leader that was killed has been replaced.
      const { json: status } = await adminGet<{ leader: string; workers: Array<{ pid: number; bootId: string; leader: boolean }> }>(
        url!,
        '/admin/workers',
      )
      expect(status.workers.map((w) => w.pid).sort()).toEqual(workerPids(run).sort())
      expect(status.workers.filter((w) => w.leader)).toHaveLength(1)
      expect(leaderKilled).toBeDefined()
      expect(status.workers.map((w) => w.pid)).not.toContain(leaderKilled)
      expect(status.workers.map((w) => w.bootId)).toContain(status.leader)

      // 7. Sanity of the load itself: enough packets went through, and no request hung.
      expect(fulfilledSeen.length).toBeGreaterThan(200)
      expect(sent.every((p) => p.doneAt - p.sentAt < EXPIRES_IN_MS + 2_000)).toBe(true)
      for (const pid of killed) expect(isRunning(pid)).toBe(false)
      expect(workerPids(run)).toHaveLength(2)
    },
    90_000,
  )
})
