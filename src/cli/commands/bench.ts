import cliProgress from 'cli-progress'
import { print, printError, UsageError } from '../command.js'
import { table } from '../format.js'

/** The bench (src/bench/), loaded only for this command: the others need none of its packet and process machinery. */
interface BenchModules {
  options: typeof import('../../bench/options.js')
  bench: typeof import('../../bench/bench.js')
  report: typeof import('../../bench/report.js')
}
type BenchProgress = import('../../bench/bench.js').BenchProgress

export const BENCH_SUMMARY: [string, string] = ['bench [options]', 'the benchmark (starts its own farm), with a progress bar']

export async function benchUsage(): Promise<string> {
  const { BENCH_OPTIONS_HELP } = (await loadBench()).options
  return `Usage: ilp-farm bench [options]

The project's benchmark (the same as npm run bench): starts its own Redis, a
fulfilling receiver, a pass-through floor, ilp-connector (the reference connector)
and farms of each --workers size, drives the same load through each, and prints
packets/s, latencies, the farm/floor and farm/ilp-connector ratios against their
targets, CPU and Redis calls per packet. It does not touch a running farm. A progress bar
runs on stderr; the results go to stdout (a table, or --json as npm run bench --json).

${BENCH_OPTIONS_HELP}`
}

async function loadBench(): Promise<BenchModules> {
  const [options, bench, report] = await Promise.all([import('../../bench/options.js'), import('../../bench/bench.js'), import('../../bench/report.js')])
  return { options, bench, report }
}

/** `ilp-farm bench [options]`: exit 0 done, 1 failed, 2 bad options, 130 interrupted. */
export async function runBenchCommand(argv: string[]): Promise<number> {
  const { options, bench, report: output } = await loadBench()
  let opts: ReturnType<BenchModules['options']['parseBenchOptions']>
  try {
    opts = options.parseBenchOptions(argv)
  } catch (err) {
    throw new UsageError((err as Error).message, 'bench')
  }
  if (!opts) {
    print(await benchUsage())
    return 0
  }
  const bar = new ProgressBar()
  const stop = () => {
    bar.stop()
    printError('\nbench: interrupted, cleaning up')
    void bench.stopBench().finally(() => process.exit(130))
  }
  process.once('SIGINT', stop)
  process.once('SIGTERM', stop)
  bench.stopBenchOnFatalError()
  let report: Awaited<ReturnType<BenchModules['bench']['runBench']>>
  try {
    report = await bench.runBench(opts, { onProgress: (p) => bar.update(p), log: (line) => bar.log(line) })
  } finally {
    bar.stop()
  }
  if (!report) return 130
  print(opts.json ? output.benchJson(report) : output.benchText(report, (head, rows) => table(head.map((h, i) => ({ header: h, align: i <= 1 ? 'left' : 'right' })), rows)))
  return 0
}

/**
 * The cli-progress bar on stderr, over the seconds of load. Started at the
 * first progress report so start-up lines print plainly above it. Not a
 * terminal (CI, a pipe): a plain line per second instead of redraws, so logs
 * still show the progress.
 */
class ProgressBar {
  private readonly tty = process.stderr.isTTY === true
  private bar: cliProgress.SingleBar | undefined

  update(p: BenchProgress): void {
    const total = Math.max(1, Math.round(p.totalMs / 100) / 10)
    const value = Math.round(p.doneMs / 100) / 10
    if (!this.bar) {
      this.bar = new cliProgress.SingleBar({
        stream: process.stderr,
        format: 'bench [{bar}] {percentage}% | {value}/{total} s of load | {step}',
        noTTYOutput: true,
        notTTYSchedule: 1000,
        hideCursor: this.tty,
        barsize: 30,
      })
      this.bar.start(total, value, { step: p.step })
      return
    }
    this.bar.update(value, { step: p.step })
  }

  /** A line above the bar: on a terminal the bar is erased first and redrawn at its next tick. */
  log(line: string): void {
    if (this.bar && this.tty) process.stderr.write(`\r\x1b[2K${line}\n`)
    else printError(line)
  }

  stop(): void {
    this.bar?.stop()
    this.bar = undefined
  }
}
