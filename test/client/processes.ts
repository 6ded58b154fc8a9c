import { type ChildProcess, spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'

/** The package folder: children run from here so `--import tsx` resolves. */
const ROOT = fileURLToPath(new URL('../../', import.meta.url))
const CLIENT_CLI = fileURLToPath(new URL('../../src/client/cli.ts', import.meta.url))

export interface ClientCli {
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** Resolves with the first match in stdout+stderr after `from` characters; rejects on timeout or exit. */
  waitFor(pattern: RegExp, timeoutMs?: number, from?: number): Promise<RegExpMatchArray>
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Sends the signal (default SIGKILL) and waits until the process is gone. */
  kill(signal?: NodeJS.Signals): Promise<void>
}

const running = new Set<ChildProcess>()
// Last resort if the test process goes away: no child outlives it.
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

/** Runs `node --import tsx src/client/cli.ts ...args` (the ilp-farm-client CLI from source). */
export function runClientCli(args: string[], env: NodeJS.ProcessEnv = {}): ClientCli {
  const cleanEnv = { ...process.env }
  for (const key of Object.keys(cleanEnv)) if (key.startsWith('ILP_FARM_') || key === 'NODE_OPTIONS') delete cleanEnv[key]
  const child = spawn(process.execPath, ['--import', 'tsx', CLIENT_CLI, ...args], {
    cwd: ROOT,
    env: { ...cleanEnv, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  running.add(child)
  let out = ''
  let err = ''
  const listeners = new Set<() => void>()
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk
    listeners.forEach((l) => l())
  })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk
    listeners.forEach((l) => l())
  })
  let gone = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code: number | null, signal: NodeJS.Signals | null) => {
      gone = true
      running.delete(child)
      listeners.forEach((l) => l())
      resolve({ code, signal })
    })
  })
  const describe = () => `\n--- stdout ---\n${out.slice(-3000)}\n--- stderr ---\n${err.slice(-3000)}`
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pattern, timeoutMs = 20_000, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = `${out.slice(from)}\n${err}`.match(pattern)
          if (match) {
            done()
            resolve(match)
          } else if (gone) {
            done()
            reject(new Error(`ilp-farm-client ${args[0]} exited before printing ${pattern}${describe()}`))
          }
        }
        const timer = setTimeout(() => {
          done()
          reject(new Error(`no ${pattern} from ilp-farm-client ${args[0]} within ${timeoutMs} ms${describe()}`))
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          listeners.delete(check)
        }
        listeners.add(check)
        check()
      })
    },
    async kill(signal = 'SIGKILL') {
      if (!gone) child.kill(signal)
      await exited
    },
  }
}

/** The tunnel server as a child process, so a test can really kill it. */
export async function startTunnelServerProcess(port = 0): Promise<{ cli: ClientCli; url: string; port: number }> {
  const cli = runClientCli(['tunnel-server', '--port', String(port)])
  const match = await cli.waitFor(/tunnel server listening on (http:\/\/127\.0\.0\.1:(\d+))/)
  return { cli, url: match[1]!, port: Number(match[2]) }
}
