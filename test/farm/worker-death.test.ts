import { randomInt } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { request as httpRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { FarmConfigInput } from '../../src/config/schema.js'
import { Keys } from '../../src/store/keys.js'
import { cleanEnv, killAllClis, runCli, sleep, workerPids } from '../helpers/cli.js'
import { ADMIN_TOKEN } from '../helpers/farm.js'
import { type LedgerWatch, watchLedger } from '../helpers/ledger-monitor.js'
import { type Receiver, runLoad, type SentPacket, startReceiver, summarize, sum } from '../helpers/load.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { recordsLeft } from '../helpers/in-flight.js'

/**
 * Worker deaths strand no client: the real `ilp-farm start` with 2 workers
 * under load from clients that have no timeouts of their own (undici with
 * keep-alive, and plain node:http with a new connection per request), one
 * worker or both SIGKILLed again and again. Every request must be answered, or its
 * connection refused or closed, within a second of its prepare's expiry;
 * a connection the supervisor accepted and never handed on would hang here
 * until the test's own watchdog fires. The money still adds up afterwards.
 */

const PREFIX = 'death:'
const keys = new Keys(PREFIX)
const LOAD_MS = 10_000
const CONCURRENCY = 50
const ROUNDS = 5
const EXPIRES_IN_MS = 3_000
const MAX_HOLD_MS = 2_000
/** No request waits more than about 1 s past its own deadline (its prepare's expiry). */
const GRACE_MS = 1_000
/**
 * /health has no deadline of its own: answered, refused or closed within this. A worker that accepted a
 * connection may be slow to answer on a loaded machine before it is killed (then the kernel resets it).
 */
const PROBE_LIMIT_MS = 5_000

let redis: TestRedis
let receiver: Receiver
let watch: LedgerWatch | undefined
let tmp: string

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-death-'))
  redis = await startTestRedis()
  receiver = await startReceiver(40)
})

afterAll(async () => {
  await killAllClis()
  watch?.stop()
  await receiver?.close()
  await redis?.close()
  rmSync(tmp, { recursive: true, force: true })
})

interface Probe {
  sentAt: number
  doneAt: number
  outcome: string
}

/**
 * `loops` plain node:http clients, each a new connection per request (no agent, no timeout): many
 * connections made while workers die, each one a hand-off that must not be lost.
 */
async function churn(url: string, loops: number, durationMs: number): Promise<Probe[]> {
  const probes: Probe[] = []
  const deadline = Date.now() + durationMs
  const once = () =>
    new Promise<Probe>((resolve) => {
      const probe: Probe = { sentAt: Date.now(), doneAt: 0, outcome: '' }
      const done = (outcome: string) => {
        if (probe.doneAt !== 0) return
        probe.doneAt = Date.now()
        probe.outcome = outcome
        resolve(probe)
      }
      const req = httpRequest(`${url}/health`, { agent: false, headers: { connection: 'close' } }, (res) => {
        res.resume()
        res.on('end', () => done(`HTTP ${res.statusCode}`))
        res.on('error', (err) => done(err.message))
      })
      req.on('error', (err) => done((err as NodeJS.ErrnoException).code ?? err.message))
      req.end()
    })
  await Promise.all(
    Array.from({ length: loops }, async () => {
      while (Date.now() < deadline) {
        const probe = await once()
        probes.push(probe)
        if (!probe.outcome.startsWith('HTTP')) await sleep(20)
      }
    }),
  )
  return probes
}

describe('worker death', () => {
  it(
    'no client without timeouts waits past its deadline when workers are SIGKILLed under load',
    async () => {
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
          { id: 'receiver', relation: 'peer', assetCode: 'USD', assetScale: 6, outgoing: { url: receiver.url }, routes: ['test.receiver'] },
        ],
      }
      const file = join(tmp, 'farm.yaml')
      writeFileSync(file, stringify(config))
      const run = runCli(['start', '--config', file], { env: cleanEnv({ REDIS_URL: redis.url }) })
      const [, url] = await run.waitFor(/listening on (http:\/\/\S+)/, 45_000)
      for (const pid of workerPids(run)) run.track(pid)
      expect(workerPids(run)).toHaveLength(2)
      watch = await watchLedger(redis.url, PREFIX, 'receiver')
      const started = Date.now()

      // Every other round kills both workers at once: the listening socket closes with the last of them.
      const killed: number[] = []
      const killer = (async () => {
        const slot = (LOAD_MS - 1_500) / ROUNDS
        for (let i = 0; i < ROUNDS; i++) {
          await sleep(Math.max(0, started + 500 + i * slot + randomInt(0, Math.floor(slot * 0.5)) - Date.now()))
          // a worker killed young restarts only after a back-off: wait for one to kill
          let live = workerPids(run)
          while (live.length === 0 && Date.now() < started + LOAD_MS) {
            await sleep(50)
            live = workerPids(run)
          }
          const victims = i % 2 === 1 ? live : live.slice(randomInt(0, live.length)).slice(0, 1)
          for (const pid of victims) {
            run.track(pid)
            process.kill(pid, 'SIGKILL')
            killed.push(pid)
          }
        }
      })()
      // headersTimeout and bodyTimeout 0: the client would wait for ever; only the farm can end a request.
      const watchdogMs = LOAD_MS + EXPIRES_IN_MS + GRACE_MS + 10_000
      let hung = false
      const [sent, probes] = await Promise.race([
        Promise.all([
          runLoad({
          farmUrl: url!,
          account: 'sender',
          token: 'sender-token',
          destination: 'test.receiver.bob',
          concurrency: CONCURRENCY,
          durationMs: LOAD_MS,
          expiresInMs: EXPIRES_IN_MS,
          requestTimeoutMs: 0,
          pauseAfterErrorMs: 20,
          }),
          churn(url!, 10, LOAD_MS),
        ]),
        sleep(watchdogMs).then(() => {
          hung = true
          return [[] as SentPacket[], [] as Probe[]] as const
        }),
      ])
      await killer
      expect(hung, 'a request was neither answered nor refused').toBe(false)

      const waits = sent.map((p) => p.doneAt - p.sentAt)
      const late = sent.filter((p) => p.doneAt - p.sentAt > EXPIRES_IN_MS + GRACE_MS)
      // /health has no expiry of its own: it is answered at once, or its connection refused or closed
      const lateProbes = probes.filter((p) => p.doneAt - p.sentAt > PROBE_LIMIT_MS)
      const lastExpiry = Math.max(...sent.map((p) => p.sentAt)) + EXPIRES_IN_MS
      let emptyAt: number | undefined
      for (;;) {
        if ((await recordsLeft(redis.client, keys.prefix)) === 0 && Date.now() > lastExpiry) {
          emptyAt = Date.now()
          break
        }
        if (Date.now() > lastExpiry + 15_000) break
        await sleep(100)
      }
      await sleep(300)
      watch.stop()
      const balances = async (id: string) => {
        const fields = await redis.client.hgetall(keys.account(id))
        return Object.entries(fields)
          .filter(([f]) => f === 'cold' || f.startsWith('hot:'))
          .reduce((acc, [, v]) => acc + BigInt(v), 0n)
      }
      const senderBalance = await balances('sender')
      const receiverBalance = await balances('receiver')
      const fulfilledSeen = sent.filter((p) => p.outcome === 'fulfill')
      const committed = sent.filter((p) => watch!.committed.has(`sender|${p.packetId}`))
      console.log(
        `worker death: ${sent.length} requests (${summarize(sent)}); killed ${killed.length} workers in ${ROUNDS} rounds; ` +
          `longest wait ${Math.max(...waits)} ms (deadline ${EXPIRES_IN_MS} ms); ` +
          `${probes.length} new-connection /health probes, longest ${Math.max(...probes.map((p) => p.doneAt - p.sentAt))} ms; committed ${watch.committed.size}, refunded ${watch.refunded.size}`,
      )

      // Every request ended (answer, refused or closed connection) within GRACE_MS of its own expiry.
      expect(late.map((p) => `${p.outcome} ${p.detail} after ${p.doneAt - p.sentAt} ms`)).toEqual([])
      expect(lateProbes.map((p) => `${p.outcome} after ${p.doneAt - p.sentAt} ms`)).toEqual([])
      expect(probes.filter((p) => p.outcome === 'HTTP 200').length).toBeGreaterThan(10)
      expect(killed.length).toBeGreaterThanOrEqual(ROUNDS - 1)
      expect(fulfilledSeen.length).toBeGreaterThan(30)

      // The money invariant of the kill test holds.
      expect(emptyAt).toBeDefined()
      expect(senderBalance + receiverBalance).toBe(0n)
      expect([...watch.settlements.values()].every((n) => n === 1)).toBe(true)
      expect(watch.committed.size + watch.refunded.size).toBe(watch.prepared.size)
      for (const p of fulfilledSeen) expect(watch.committed.has(`sender|${p.packetId}`)).toBe(true)
      for (const p of committed) expect(receiver.fulfilled.has(p.conditionHex)).toBe(true)
      expect(receiverBalance).toBe(sum(committed.map((p) => p.amount)))
    },
    120_000,
  )
})
