import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { descendantsOf, killAllClis, ROOT, runCli } from '../helpers/cli.js'

/**
 * `npm run soak` (scripts/soak.ts), a short run: a real two-worker farm
 * (`ilp-farm start` as a child), its own redis-server and next hops, mixed
 * load for a few seconds; the exit code and the summary it prints.
 */

const SOAK = join(ROOT, 'scripts', 'soak.ts')

afterEach(async () => {
  await killAllClis()
})

describe('npm run soak (scripts/soak.ts)', () => {
  it('a few seconds of mixed load on 2 workers: every check passes, exit 0, the summary names every kind of traffic', async () => {
    // Six seconds cannot tell a worker's warm-up (code paths first used, their caches) from growth: a CI run
    // saw the heap's low point go 10 -> 42 MB. The default bound is for runs of minutes; here it is wider.
    const run = runCli(['--seconds', '6', '--workers', '2', '--concurrency', '4', '--max-heap-growth-mb', '128'], { script: SOAK })
    const exit = await run.waitForExit(90_000)
    const out = run.stdout()
    expect(exit, `${out}\n${run.stderr()}`).toEqual({ code: 0, signal: null })
    // a line per sample: throughput, latency, RSS and heap of both workers, Redis memory, drift
    const lines = out.split('\n').filter((l) => /^\[ *\d+:\d\d\]/.test(l))
    expect(lines.length).toBeGreaterThanOrEqual(3)
    for (const line of lines) expect(line).toMatch(/req \(\d+\/s\) +p50 .* rss [\d.]+\/[\d.]+ MB +heap [\d.]+\/[\d.]+ MB +redis [\d.]+ MB +drift -?\d+ +unexpected 0/)
    for (const kind of ['fulfill: fulfill', 'async: fulfill', 'reject: F99', 'timeout: R00', 'rpc: fulfill', 'rpc: balance', 'deposit: 200', 'withdrawal: 200']) expect(out).toContain(kind)
    expect(out).toMatch(/after warm-up → end: rss [\d.]+→[\d.]+, [\d.]+→[\d.]+ MB; heap .* redis [\d.]+→[\d.]+ MB; p50/)
    expect(out).toContain('soak: in flight after the load 0, drift 0, unexpected 0')
    expect(out).toContain('soak: PASS')
  }, 120_000)

  it('interrupted (SIGINT) it stops what it started and exits 1 with the reason', async () => {
    const run = runCli(['--seconds', '60', '--workers', '1', '--concurrency', '2'], { script: SOAK })
    await run.waitFor(/^\[ *0:0\d\]/m, 60_000)
    const started = descendantsOf(run.pid)
    expect(started.length).toBeGreaterThan(0) // redis-server, the farm and its worker
    process.kill(run.pid, 'SIGINT')
    const exit = await run.waitForExit(60_000)
    expect(exit.code).toBe(1)
    expect(run.stdout()).toContain('interrupted before the end')
    expect(run.stdout()).toContain('soak: FAIL')
    for (const pid of started) expect(() => process.kill(pid, 0)).toThrow()
  }, 120_000)

  it('bad usage exits 2', async () => {
    const run = runCli(['--minutes', '0'], { script: SOAK })
    expect(await run.waitForExit(20_000)).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain('--minutes must be an integer 1..1440, got "0"')
  })
})
