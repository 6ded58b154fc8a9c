import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanEnv, descendantsOf, killAllClis, ROOT, runCli } from '../helpers/cli.js'

/**
 * `ilp-farm bench` and `npm run bench` (src/bench/main.ts), short runs: each
 * starts its own redis-server, receiver, floor and a one-worker farm.
 */

const SHORT = ['--duration', '1', '--warmup', '0', '--runs', '1', '--concurrency', '5', '--workers', '1']
const BENCH_TIMEOUT_MS = 28_000

afterEach(async () => {
  await killAllClis()
})

interface Report {
  node: string
  cores: number
  options: { concurrency: number[]; workers: number[]; durationMs: number; runs: number }
  levels: Array<{ concurrency: number; floor: { pps: number; nonFulfill: number }; farms: Array<{ workers: number; pps: number; ratio: number; redis: { scriptCallsPerPacket: number } }> }>
  summary: { concurrency: number; floorPps: number; farms: Array<{ workers: number; pps: number }>; meetsGoal: boolean }
}

function checkReport(report: Report): void {
  expect(Object.keys(report)).toEqual(['node', 'cores', 'options', 'packet', 'levels', 'summary'])
  expect(report.options).toMatchObject({ concurrency: [5], workers: [1], durationMs: 1000, runs: 1 })
  expect(report.levels).toHaveLength(1)
  const [level] = report.levels
  expect(level!.concurrency).toBe(5)
  expect(level!.floor.pps).toBeGreaterThan(0)
  expect(level!.floor.nonFulfill).toBe(0)
  expect(level!.farms.map((f) => f.workers)).toEqual([1])
  expect(level!.farms[0]!.pps).toBeGreaterThan(0)
  expect(level!.farms[0]!.redis.scriptCallsPerPacket).toBeGreaterThan(0)
  expect(report.summary).toMatchObject({ concurrency: 5, farms: [{ workers: 1 }] })
  expect(typeof report.summary.meetsGoal).toBe('boolean')
}

describe('ilp-farm bench', () => {
  it(
    '--json: a progress bar on stderr while it runs, the report on stdout',
    async () => {
      const run = runCli(['bench', ...SHORT, '--json'])
      expect(await run.waitForExit(BENCH_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
      // Not a terminal here: cli-progress prints the bar as a line at each tick, and a last one at the end.
      const bars = run.stderr().match(/^bench \[[=-]+\] \d+% \| [\d.]+\/2 s of load \| .*$/gm) ?? []
      expect(bars.length).toBeGreaterThan(1)
      expect(bars.at(-1)).toMatch(/ 100% \| 2\/2 s of load \| done$/)
      expect(run.stderr()).toMatch(/bench: farm \(pid \d+, 1 worker\) at http/)
      checkReport(JSON.parse(run.stdout()) as Report)
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  it(
    'without --json: the results as a table',
    async () => {
      const run = runCli(['bench', ...SHORT])
      expect(await run.waitForExit(BENCH_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
      const out = run.stdout()
      expect(out).toMatch(/│ conc +│ target +│ +pkt\/s │ vs floor │/)
      expect(out).toMatch(/│ 5 +│ floor +│ +\d+ │/)
      expect(out).toMatch(/│ +│ farm 1w +│ +\d+ │ +\d+\.\d\d │/)
      expect(out).toMatch(/^summary @5 concurrent: floor \d+ pkt\/s; farm 1w \d+ pkt\/s/m)
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  it('bad options exit 2', async () => {
    const run = runCli(['bench', '--runs', '0'])
    expect(await run.waitForExit(20_000)).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain('--runs must be an integer 1..20, got "0"')
  })
})

/**
 * `node --import tsx src/bench/main.ts ...args` (the workspace packages as source, as the other CLIs under test:
 * test/helpers/cli.ts): its exit code, stdout and stderr; killed (its group and what it started) if still running after timeoutMs.
 */
async function runScript(args: string[], timeoutMs: number): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn(process.execPath, ['--conditions=ilp-farm-source', '--import', 'tsx', join(ROOT, 'src', 'bench', 'main.ts'), ...args], {
    cwd: ROOT,
    env: cleanEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  })
  let out = ''
  let err = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c))
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c))
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`bench still running:\n${err}`)), timeoutMs)
      child.once('close', (c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
    return { code, out, err }
  } finally {
    // Only while it runs (once it has exited, its pid may be someone else's): its group, then what it started.
    if (child.exitCode === null && child.signalCode === null) {
      const started = descendantsOf(child.pid!)
      for (const target of [-child.pid!, ...started]) {
        try {
          process.kill(target, 'SIGKILL')
        } catch {
          // already gone
        }
      }
    }
  }
}

describe('npm run bench (src/bench/main.ts as a script)', () => {
  it(
    'prints its plain table and the summary line, as before',
    async () => {
      const { code, out, err } = await runScript(SHORT, BENCH_TIMEOUT_MS)
      expect(code, err).toBe(0)
      expect(out).toMatch(/^conc +target +pkt\/s +vs floor +p50/m)
      expect(out).toMatch(/^5 +floor +\d+/m)
      expect(out).toMatch(/^summary @5 concurrent: /m)
      expect(out).not.toContain('cluster')
      expect(err).toMatch(/^ {2}c= {2}5 run 1\/1 floor +\d+ pkt\/s/m)
      expect(err).not.toContain('bench [') // no progress bar as a script
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  // a local 3-master cluster (1 replica each) and two more farms on it: about 20 s
  const CLUSTER_TIMEOUT_MS = 45_000
  it(
    '--redis cluster: the cluster farms (durability none and replica) next to the single-Redis one, and the cluster summary line',
    async () => {
      const { code, out, err } = await runScript([...SHORT, '--redis', 'cluster'], CLUSTER_TIMEOUT_MS)
      expect(code, err).toBe(0)
      expect(err).toMatch(/^bench: Redis Cluster of 3 masters x 1 replica at redis:\/\/127\.0\.0\.1:\d+/m)
      expect(out).toMatch(/^conc +target +pkt\/s +vs single +vs none +p50 +p99 +redis RT\/pkt/m)
      const num = String.raw`\d+(?:\.\d+)?`
      expect(out).toMatch(new RegExp(String.raw`^5 +farm 1w +\d+ +${num} ms +${num} ms +${num} +${num} +\d+ us +${num}%$`, 'm'))
      expect(out).toMatch(new RegExp(String.raw`^ +cluster 1w +\d+ +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +\d+ us +${num}%$`, 'm'))
      expect(out).toMatch(new RegExp(String.raw`^ +cluster 1w replica +\d+ +${num} +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +\d+ us +${num}%$`, 'm'))
      expect(out).toMatch(
        new RegExp(
          String.raw`^cluster summary: cluster/single ${num} at c=5, 1 worker \(goal >= 0\.9\); ${num} Redis round trips per fulfilled packet \(goal <= 2; single ${num}\); ` +
            String.raw`durability replica costs -?${num}% pkt/s`,
          'm',
        ),
      )
    },
    CLUSTER_TIMEOUT_MS + 2_000,
  )
})
