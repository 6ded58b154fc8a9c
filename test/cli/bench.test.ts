import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { cleanEnv, descendantsOf, killAllClis, ROOT, runCli, waitUntilGone } from '../helpers/cli.js'

/**
 * `ilp-farm bench` and `npm run bench` (src/bench/main.ts), short runs: each
 * starts its own redis-server, receiver, floor, floor+redis, ilp-connector
 * and a one-worker farm.
 */

const SHORT = ['--duration', '1', '--warmup', '0', '--runs', '1', '--concurrency', '5', '--workers', '1']
const BENCH_TIMEOUT_MS = 28_000

afterEach(async () => {
  await killAllClis()
})

interface Check {
  value: number
  target: number
  meets: boolean
}

interface Report {
  node: string
  cores: number
  ilpConnector: string | null
  options: { concurrency: number[]; workers: number[]; connector: boolean; redisFloor: boolean; durationMs: number; runs: number }
  levels: Array<{
    concurrency: number
    floor: { pps: number; nonFulfill: number }
    redisFloor?: {
      pps: number
      ratio: number
      cpuUsPerPacket: number
      nonFulfill: number
      redis: { cpuUsPerPacket: number; scriptCallsPerPacket: number; commandsPerPacket: number; breakdownPerPacket: Record<string, number> }
    }
    connector?: { pps: number; ratio: number; cpuUsPerPacket: number; nonFulfill: number }
    farms: Array<{
      workers: number
      pps: number
      ratio: number
      vsConnector: number | null
      vsRedisFloor: number | null
      byRun: { vsFloor: number[]; vsRedisFloor: number[] | null; vsConnector: number[] | null }
      redis: { scriptCallsPerPacket: number }
      runs: Array<{ pps: number }>
    }>
  }>
  summary: {
    concurrency: number
    floorPps: number
    redisFloorPps: number | null
    connectorPps: number | null
    farms: Array<{ workers: number; pps: number }>
    targets: { vsFloor: Check; vsConnector: Check | null; p99VsFloor: Check; allFulfilled: boolean; meets: boolean } | null
    meetsGoal: boolean
  }
}

function checkReport(report: Report): void {
  expect(Object.keys(report)).toEqual(['node', 'cores', 'ilpConnector', 'options', 'packet', 'levels', 'summary'])
  expect(report.ilpConnector).toMatch(/^23\./)
  expect(report.options).toMatchObject({ concurrency: [5], workers: [1], connector: true, redisFloor: true, durationMs: 1000, runs: 1 })
  expect(report.levels).toHaveLength(1)
  const [level] = report.levels
  expect(level!.concurrency).toBe(5)
  expect(level!.floor.pps).toBeGreaterThan(0)
  expect(level!.floor.nonFulfill).toBe(0)
  // the floor with Redis: every packet's record written and deleted, plain commands batched per turn, no script
  const redisFloor = level!.redisFloor!
  expect(redisFloor.pps).toBeGreaterThan(0)
  expect(redisFloor.nonFulfill).toBe(0)
  expect(redisFloor.ratio).toBeCloseTo(redisFloor.pps / level!.floor.pps, 2)
  expect(redisFloor.cpuUsPerPacket).toBeGreaterThan(0)
  expect(redisFloor.redis.cpuUsPerPacket).toBeGreaterThan(0)
  // at most one HSET and one HDEL per packet (fewer when a turn's packets share them); the idle farm's own
  // background calls (heartbeats, the sweeper) on the same Redis are a few over the whole run
  const { hset, hdel } = redisFloor.redis.breakdownPerPacket
  expect(hset).toBeGreaterThan(0)
  expect(hdel).toBeGreaterThan(0)
  expect(hset! + hdel!).toBeLessThanOrEqual(2.01)
  expect(redisFloor.redis.scriptCallsPerPacket).toBeLessThan(0.05)
  expect(report.summary.redisFloorPps).toBe(redisFloor.pps)
  // ilp-connector forwarded every packet, and its own process's CPU was read
  expect(level!.connector!.pps).toBeGreaterThan(0)
  expect(level!.connector!.nonFulfill).toBe(0)
  expect(level!.connector!.cpuUsPerPacket).toBeGreaterThan(0)
  // --json rounds fractions to 3 digits
  expect(level!.connector!.ratio).toBeCloseTo(level!.connector!.pps / level!.floor.pps, 2)
  expect(level!.farms.map((f) => f.workers)).toEqual([1])
  const farm = level!.farms[0]!
  expect(farm.pps).toBeGreaterThan(0)
  expect(farm.vsConnector).toBeCloseTo(farm.pps / level!.connector!.pps, 2)
  expect(farm.vsRedisFloor).toBeCloseTo(farm.pps / redisFloor.pps, 2)
  // one run: the ratios run by run are the medians' ratios
  expect(farm.byRun.vsFloor).toHaveLength(1)
  expect(farm.byRun.vsFloor[0]).toBeCloseTo(farm.ratio, 2)
  expect(farm.byRun.vsRedisFloor![0]).toBeCloseTo(farm.vsRedisFloor!, 2)
  expect(farm.byRun.vsConnector![0]).toBeCloseTo(farm.vsConnector!, 2)
  expect(farm.redis.scriptCallsPerPacket).toBeGreaterThan(0)
  expect(report.summary).toMatchObject({ concurrency: 5, connectorPps: level!.connector!.pps, farms: [{ workers: 1 }] })
  const targets = report.summary.targets!
  expect(targets.vsFloor).toMatchObject({ value: farm.ratio, target: 0.8 })
  expect(targets.vsConnector).toMatchObject({ value: farm.vsConnector, target: 3 })
  expect(targets.p99VsFloor.target).toBe(1.5)
  for (const check of [targets.vsFloor, targets.vsConnector!]) {
    // the value is rounded: only a clear margin says which side of the target it was on
    if (Math.abs(check.value - check.target) > 0.001) expect(check.meets).toBe(check.value >= check.target)
  }
  expect(report.summary.meetsGoal).toBe(targets.vsFloor.meets && targets.vsConnector!.meets && targets.p99VsFloor.meets && targets.allFulfilled)
}

describe('ilp-farm bench', () => {
  it(
    '--json: a progress bar on stderr while it runs, the report on stdout',
    async () => {
      const run = runCli(['bench', ...SHORT, '--json'])
      expect(await run.waitForExit(BENCH_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
      // Not a terminal here: cli-progress prints the bar as a line at each tick, and a last one at the end.
      // 1 s of load for each of the floor, floor+redis, ilp-connector and the farm
      const bars = run.stderr().match(/^bench \[[=-]+\] \d+% \| [\d.]+\/4 s of load \| .*$/gm) ?? []
      expect(bars.length).toBeGreaterThan(1)
      expect(bars.at(-1)).toMatch(/ 100% \| 4\/4 s of load \| done$/)
      expect(run.stderr()).toMatch(/bench: farm \(pid \d+, 1 worker\) at http/)
      checkReport(JSON.parse(run.stdout()) as Report)
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  it(
    'without --json: the results as a table; with two runs, each run\'s ratios too',
    async () => {
      const run = runCli(['bench', ...SHORT, '--runs', '2'])
      expect(await run.waitForExit(BENCH_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
      const out = run.stdout()
      expect(out).toMatch(/│ conc +│ target +│ +pkt\/s │ vs floor │ vs ilp-connector │/)
      expect(out).toMatch(/│ 5 +│ floor +│ +\d+ │/)
      expect(out).toMatch(/│ +│ floor\+redis +│ +\d+ │ +\d+\.\d\d │ +│/)
      expect(out).toMatch(/│ +│ ilp-connector +│ +\d+ │ +\d+\.\d\d │ +│/)
      expect(out).toMatch(/│ +│ farm 1w +│ +\d+ │ +\d+\.\d\d │ +\d+\.\d\d │/)
      expect(out).toMatch(/^summary @5 concurrent: floor \d+ pkt\/s; floor\+redis \d+ pkt\/s \(\d+\.\d\d of floor\); ilp-connector \d+ pkt\/s; farm 1w \d+ pkt\/s/m)
      const two = String.raw`\d+\.\d\d \d+\.\d\d`
      expect(out).toMatch(
        new RegExp(
          String.raw`^by run @5 \(each run's targets measured back to back\): farm 1w/floor ${two}; farm 1w/floor\+redis ${two}; ` +
            String.raw`farm 1w/ilp-connector ${two}; floor\+redis/floor ${two}$`,
          'm',
        ),
      )
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  it('bad options exit 2', async () => {
    const run = runCli(['bench', '--runs', '0'])
    expect(await run.waitForExit(20_000)).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain('--runs must be an integer 1..20, got "0"')
    const replicas = runCli(['bench', '--cluster-replicas', '2'])
    expect(await replicas.waitForExit(20_000)).toEqual({ code: 2, signal: null })
    expect(replicas.stderr()).toContain('--cluster-replicas must be 0 or 1, got "2"')
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
    'prints its plain table with the ilp-connector row, and the summary line with the targets marked',
    async () => {
      const { code, out, err } = await runScript(SHORT, BENCH_TIMEOUT_MS)
      expect(code, err).toBe(0)
      const num = String.raw`\d+(?:\.\d+)?`
      expect(out).toMatch(/^conc +target +pkt\/s +vs floor +vs ilp-connector +p50/m)
      expect(out).toMatch(/^5 +floor +\d+/m)
      // floor+redis: its Redis CPU and commands per packet, no script round trip
      expect(out).toMatch(new RegExp(String.raw`^ +floor\+redis +\d+ +${num} +${num} ms +${num} ms +\d+ us +\d+ us +0 +${num} *$`, 'm'))
      expect(out).toMatch(new RegExp(String.raw`^ +ilp-connector +\d+ +${num} +${num} ms +${num} ms +\d+ us +0 *$`, 'm'))
      expect(out).toMatch(new RegExp(String.raw`^ +farm 1w +\d+ +${num} +${num} +${num} ms`, 'm'))
      const mark = '(MEETS|BELOW)'
      expect(out).toMatch(
        new RegExp(
          String.raw`^summary @5 concurrent: floor \d+ pkt/s; floor\+redis \d+ pkt/s \(${num} of floor\); ilp-connector \d+ pkt/s; ` +
            String.raw`farm 1w \d+ pkt/s \(${num} of floor, ${num} of floor\+redis, ${num}x ilp-connector\); .*` +
            String.raw` -> 1 worker (MEETS|is BELOW) the targets: farm/floor ${num} ${mark} \(target >= 0\.8\), farm/ilp-connector ${num} ${mark} \(target >= 3\), ` +
            String.raw`p99 farm/floor ${num} ${mark} \(target <= 1\.5\), non-fulfilled floor 0% floor\+redis 0% ilp-connector 0% farm 1w 0% MEETS \(target 0%\)$`,
          'm',
        ),
      )
      expect(out).not.toContain('cluster')
      expect(err).toMatch(/^ {2}c= {2}5 run 1\/1 floor +\d+ pkt\/s/m)
      expect(err).toMatch(/^ {2}c= {2}5 run 1\/1 ilp-connector +\d+ pkt\/s .*cpu \d+ us\/pkt {2}ends \d+ us\/pkt$/m)
      // each target's share of the machine: its own CPU, Redis' for a farm, and the ends' (load generator, receiver)
      const machine = new RegExp(
        String.raw`^machine CPU per fulfilled packet @5 \(ends = the load generator and the receiver, on the same cores\): ` +
          String.raw`floor (\d+) \+ ends (\d+) = (\d+) us; floor\+redis (\d+) \+ redis (\d+) \+ ends (\d+) = (\d+) us; ` +
          String.raw`ilp-connector (\d+) \+ ends (\d+) = (\d+) us; farm 1w (\d+) \+ redis (\d+) \+ ends (\d+) = (\d+) us$`,
        'm',
      ).exec(out)
      expect(machine, out).not.toBeNull()
      const [floorCpu, floorEnds, floorSum, rfCpu, rfRedis, rfEnds, rfSum, connCpu, connEnds, connSum, farmCpu, redisCpu, farmEnds, farmSum] = machine!
        .slice(1)
        .map(Number)
      for (const ends of [floorEnds!, rfEnds!, connEnds!, farmEnds!]) expect(ends).toBeGreaterThan(0)
      expect(redisCpu).toBeGreaterThan(0)
      expect(rfRedis).toBeGreaterThan(0)
      // whole microseconds, each rounded on its own
      expect(Math.abs(floorCpu! + floorEnds! - floorSum!)).toBeLessThanOrEqual(1)
      expect(Math.abs(rfCpu! + rfRedis! + rfEnds! - rfSum!)).toBeLessThanOrEqual(2)
      expect(Math.abs(connCpu! + connEnds! - connSum!)).toBeLessThanOrEqual(1)
      expect(Math.abs(farmCpu! + redisCpu! + farmEnds! - farmSum!)).toBeLessThanOrEqual(2)
      expect(err).toMatch(/^bench: ilp-connector 23\.\S+ \(pid \d+, in-memory balances, rate limit off\) at http/m)
      expect(err).toMatch(/^bench: floor\+redis \(pid \d+, each packet's record written to the farms' Redis and deleted once answered\) at http/m)
      expect(err).not.toContain('bench [') // no progress bar as a script
    },
    BENCH_TIMEOUT_MS + 2_000,
  )

  // two local clusters, 3 masters and 3 masters x 1 replica, and three more farms on them: about 25 s
  const CLUSTER_TIMEOUT_MS = 60_000
  it(
    '--redis cluster: farms on a cluster of masters only and on one with replicas (durability none and replica) next to the single-Redis one, and the cluster summary line; --no-connector leaves ilp-connector out',
    async () => {
      const { code, out, err } = await runScript([...SHORT, '--runs', '2', '--redis', 'cluster', '--no-connector'], CLUSTER_TIMEOUT_MS)
      expect(code, err).toBe(0)
      expect(err).not.toMatch(/^bench: ilp-connector/m)
      expect(out).not.toMatch(/^ +ilp-connector /m)
      expect(out).toMatch(/^conc +target +pkt\/s +vs floor +p50/m)
      expect(out).toMatch(/, farm\/ilp-connector not measured \(--no-connector\), /)
      expect(err).toMatch(/^bench: Redis Cluster of 3 masters x 0 replica at (redis:\/\/127\.0\.0\.1:\d+,?){3} \(.*\): like for like/m)
      expect(err).toMatch(/^bench: Redis Cluster of 3 masters x 1 replica at (redis:\/\/127\.0\.0\.1:\d+,?){6} \(.*\): durability none against replica/m)
      expect(err).toMatch(/^bench: farm \(pid \d+, 1 worker, Redis Cluster of masters only\)/m)
      expect(err).toMatch(/^bench: farm \(pid \d+, 1 worker, Redis Cluster with replicas, durability replica\)/m)
      expect(out).toMatch(/^Redis Clusters \(local, appendonly everysec on every node: 3 masters; cluster\+r: 3 masters x 1 replica\)/m)
      expect(out).toMatch(/^conc +target +pkt\/s +vs single +vs none +p50 +p99 +redis RT\/pkt/m)
      const num = String.raw`\d+(?:\.\d+)?`
      expect(out).toMatch(new RegExp(String.raw`^5 +farm 1w +\d+ +${num} ms +${num} ms +${num} +${num} +\d+ us +${num}%$`, 'm'))
      // masters only: no replica, none of their CPU
      expect(out).toMatch(new RegExp(String.raw`^ +cluster 1w +\d+ +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +0 us +${num}%$`, 'm'))
      // with replicas: their CPU is counted
      const replicated = new RegExp(String.raw`^ +cluster\+r 1w +\d+ +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +(\d+) us +${num}%$`, 'm').exec(out)
      expect(replicated, out).not.toBeNull()
      expect(Number(replicated![1])).toBeGreaterThan(0)
      expect(out).toMatch(new RegExp(String.raw`^ +cluster\+r 1w replica +\d+ +${num} +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +[1-9]\d* us +${num}%$`, 'm'))
      // the goal's ratio is the masters-only cluster's, with each run's ratio beside the median
      const summary = new RegExp(
        String.raw`^cluster summary: cluster/single (${num}) at c=5, 1 worker \(goal >= 0\.9; by run (${num}) (${num})\); ${num} Redis round trips per fulfilled packet \(goal <= 2; single ${num}\); ` +
          String.raw`with 1 replica per master on these same cores, cluster\+r/single ${num}, and durability replica costs -?${num}% pkt/s \(p99 ${num} -> ${num} ms\) -> the cluster (MEETS|is BELOW) the goal$`,
        'm',
      ).exec(out)
      expect(summary, out).not.toBeNull()
      for (const ratio of [1, 2, 3].map((i) => Number(summary![i]))) expect(ratio).toBeGreaterThan(0)
    },
    CLUSTER_TIMEOUT_MS + 2_000,
  )

  it(
    '--cluster-replicas 0: only the cluster of masters only; no durability replica farm, and the summary says so; --no-redis-floor leaves floor+redis out',
    async () => {
      const { code, out, err } = await runScript([...SHORT, '--redis', 'cluster', '--cluster-replicas', '0', '--no-connector', '--no-redis-floor'], CLUSTER_TIMEOUT_MS)
      expect(code, err).toBe(0)
      // --no-redis-floor: no floor+redis process, row or ratio
      expect(err).not.toMatch(/^bench: floor\+redis/m)
      expect(out).not.toContain('floor+redis')
      expect(err).toMatch(/^bench: Redis Cluster of 3 masters x 0 replica at redis:\/\/127\.0\.0\.1:\d+/m)
      expect(err).not.toMatch(/^bench: Redis Cluster of 3 masters x 1 replica/m)
      expect(out).toMatch(/^Redis Clusters \(local, appendonly everysec on every node: 3 masters\)/m)
      const num = String.raw`\d+(?:\.\d+)?`
      // no replica: none of their CPU
      expect(out).toMatch(new RegExp(String.raw`^ +cluster 1w +\d+ +${num} +${num} ms +${num} ms +${num} +${num} +\d+ us +0 us +${num}%$`, 'm'))
      expect(out).not.toMatch(/^ +cluster\+r 1w/m)
      expect(out).toMatch(
        new RegExp(String.raw`^cluster summary: cluster/single ${num} at c=5, 1 worker \(goal >= 0\.9\); .*masters only \(--cluster-replicas 0\): durability replica not measured`, 'm'),
      )
    },
    CLUSTER_TIMEOUT_MS + 2_000,
  )

  it(
    'a reader that goes away (a closed pipe, as `npm run bench | head`) stops it: exit 1, and its farms, Redis and files go with it',
    async () => {
      const child = spawn(
        process.execPath,
        ['--conditions=ilp-farm-source', '--import', 'tsx', join(ROOT, 'src', 'bench', 'main.ts'), ...SHORT, '--duration', '3', '--no-connector'],
        { cwd: ROOT, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true },
      )
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
      let err = ''
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`the load did not begin:\n${err}`)), 30_000)
        child.stderr.setEncoding('utf8').on('data', (c: string) => {
          err += c
          if (/^bench: concurrency /m.test(err)) {
            clearTimeout(timer)
            resolve()
          }
        })
      })
      // what it started: Redis, the receiver, the floor, the farm's supervisor (its own process group) and worker
      const started = descendantsOf(child.pid!)
      const farmTmp = started
        .map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').match(/ilp-farm-bench-[^/\0]+/)?.[0])
        .find((dir) => dir !== undefined)
      expect(farmTmp, 'a farm runs from the bench folder').toBeDefined()
      expect(started.length).toBeGreaterThanOrEqual(5)
      child.stdout.destroy()
      child.stderr.destroy()
      try {
        const code = await Promise.race([exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 40_000))])
        expect(code).toBe(1)
        for (const pid of started) await waitUntilGone(pid, 5_000)
        expect(existsSync(join('/tmp', farmTmp!))).toBe(false)
      } finally {
        // a bench that failed this leaves them: nothing may outlive the test
        for (const pid of [-child.pid!, ...started]) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // gone, as it should be
          }
        }
      }
    },
    80_000,
  )
})
