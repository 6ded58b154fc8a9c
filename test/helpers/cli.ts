import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The package folder: the CLI runs from here so `--import tsx` and config/ resolve. */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url))
export const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

export interface CliRun {
  readonly child: ChildProcess
  readonly pid: number
  /** Everything printed so far. */
  stdout(): string
  stderr(): string
  /** Resolves with the first match in stdout (from character `from` on) + stderr; rejects on timeout or if the process exits first. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>
  /** Resolves when the process has exited; rejects on timeout. */
  waitForExit(timeoutMs?: number): Promise<Exit>
  readonly exited: Promise<Exit>
  /** Remembers another process (e.g. the embedded redis-server) to kill on cleanup. */
  track(pid: number): void
  /** SIGKILL the CLI's process group and every process it started that is still there. */
  kill(): Promise<void>
}

const running = new Set<CliRun>()
/** Process groups still to kill (undefined once the CLI has exited: its pid may be reused) and extra pids. */
const groups = new Map<CliRun, { group: number | undefined; tracked: Map<number, string> }>()

// Last resort if the test process itself goes away: no farm outlives it.
process.once('exit', () => {
  for (const { group, tracked } of groups.values()) {
    for (const target of [...(group === undefined ? [] : [-group]), ...tracked.keys()]) {
      try {
        process.kill(target, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }
})

/** The environment a farm would get on a clean machine: no Redis hints, nothing from the test runner. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  for (const key of Object.keys(env)) {
    if (key === 'REDIS_URL' || key === 'REDIS_CLUSTER' || key === 'REDIS_SERVER_BIN' || key === 'NODE_OPTIONS' || key.startsWith('ILP_FARM_')) delete env[key]
  }
  return { ...env, ...extra }
}

/**
 * Runs `node --import tsx src/cli/main.ts ...args` (or another `script` of the package) in its own process group.
 * `input` is written to its standard input, which is then closed; without it there is none.
 */
export function runCli(
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; script?: string; input?: string; nodeArgs?: string[] } = {},
): CliRun {
  // By default TypeScript through tsx, and the workspace packages as their source, as vitest and tsc read them
  // (package.json "exports"); an installed, built script runs with nodeArgs: [].
  const nodeArgs = opts.nodeArgs ?? ['--conditions=ilp-farm-source', '--import', 'tsx']
  const child = spawn(process.execPath, [...nodeArgs, opts.script ?? CLI, ...args], {
    cwd: opts.cwd ?? ROOT,
    env: opts.env ?? cleanEnv(),
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    // Own process group: cleanup kills the supervisor and its workers at once,
    // and a signal to the group is what Ctrl+C in a terminal does.
    detached: true,
  })
  if (child.pid === undefined) throw new Error('could not spawn the CLI')
  const pid = child.pid
  if (opts.input !== undefined) child.stdin!.end(opts.input)
  let out = ''
  let err = ''
  const listeners = new Set<() => void>()
  const notify = () => listeners.forEach((l) => l())
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    notify()
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
    notify()
  })
  let exit: Exit | undefined
  const exited = new Promise<Exit>((resolveExit) => {
    // 'close': the process is gone and its output is fully read.
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      exit = { code, signal }
      notify()
      resolveExit(exit)
    })
  })
  /** pid → its command line when tracked, so a reused pid is never killed. */
  const tracked = new Map<number, string>()
  const describe = () => `\n--- stdout ---\n${out.slice(-4000)}\n--- stderr ---\n${err.slice(-4000)}`

  const run: CliRun = {
    child,
    pid,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor(pattern, timeoutMs = 45_000, from = 0) {
      return new Promise((resolveMatch, reject) => {
        const check = () => {
          const match = `${out.slice(from)}\n${err}`.match(pattern)
          if (match) {
            done()
            resolveMatch(match)
          } else if (exit) {
            done()
            reject(new Error(`CLI exited (${exit.signal ?? `code ${exit.code}`}) before printing ${pattern}${describe()}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no ${pattern} from the CLI within ${timeoutMs} ms${describe()}`))
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        listeners.add(check)
        check()
      })
    },
    waitForExit(timeoutMs = 30_000) {
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error(`CLI still running after ${timeoutMs} ms${describe()}`)), timeoutMs)
      })
      return Promise.race([exited, timeout]).finally(() => clearTimeout(timer))
    },
    track(p) {
      const info = processes().find((i) => i.pid === p)
      if (info) tracked.set(p, info.args)
    },
    async kill() {
      // Only look for descendants while the CLI runs: once it has exited, its pid may be reused.
      const live = processes()
      const stillOurs = [...tracked].filter(([p, args]) => live.some((i) => i.pid === p && i.args === args)).map(([p]) => p)
      const pids = new Set([...stillOurs, ...(exit ? [] : descendantsOf(pid))])
      if (!exit) {
        try {
          process.kill(-pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      for (const p of pids) {
        try {
          process.kill(p, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      await Promise.race([exited, sleep(5_000)])
      for (const p of pids) await waitUntilGone(p, 5_000).catch(() => undefined)
      running.delete(run)
      groups.delete(run)
    },
  }
  running.add(run)
  groups.set(run, { group: pid, tracked })
  void exited.then(() => {
    const entry = groups.get(run)
    if (entry) entry.group = undefined
  })
  return run
}

/** Kills every CLI started by runCli that is still around (for afterEach/afterAll). */
export async function killAllClis(): Promise<void> {
  await Promise.all([...running].map((run) => run.kill()))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolveSleep) => setTimeout(resolveSleep, ms))
}

export interface ProcessInfo {
  pid: number
  ppid: number
  state: string
  args: string
}

/** Every process on the machine, from ps (Linux and macOS). */
export function processes(): ProcessInfo[] {
  const text = execFileSync('ps', ['-eo', 'pid=,ppid=,stat=,args='], { encoding: 'utf8' })
  const list: ProcessInfo[] = []
  for (const line of text.split('\n')) {
    const m = line.match(/^\s*(\d+)\s+(\d+)\s+(\S+)\s+(.*)$/)
    if (m) list.push({ pid: Number(m[1]), ppid: Number(m[2]), state: m[3]!, args: m[4]! })
  }
  return list
}

export function descendantsOf(root: number): number[] {
  const all = processes()
  const found: number[] = []
  const queue = [root]
  while (queue.length > 0) {
    const parent = queue.shift()!
    for (const p of all) {
      if (p.ppid === parent && !found.includes(p.pid)) {
        found.push(p.pid)
        queue.push(p.pid)
      }
    }
  }
  return found
}

/** Running (not a zombie waiting to be reaped). */
export function isRunning(pid: number): boolean {
  const p = processes().find((info) => info.pid === pid)
  return p !== undefined && !p.state.startsWith('Z')
}

export async function waitUntilGone(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (isRunning(pid)) {
    if (Date.now() > deadline) throw new Error(`process ${pid} still running after ${timeoutMs} ms`)
    await sleep(100)
  }
}

/** The redis-server listening on this loopback port (its process title ends in host:port). */
export function redisServerOnPort(port: number): ProcessInfo | undefined {
  const title = new RegExp(`redis-server\\s+\\S*:${port}(\\s|$)`)
  return processes().find((p) => title.test(p.args) && !p.state.startsWith('Z'))
}

/** The live worker processes of an `ilp-farm start` run (its node:cluster children). */
export function workerPids(run: CliRun): number[] {
  return processes()
    .filter((p) => p.ppid === run.pid && p.args.includes('worker-main') && !p.state.startsWith('Z'))
    .map((p) => p.pid)
}
