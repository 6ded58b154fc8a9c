import type { ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { type CliRun, cleanEnv, runCli } from '../helpers/cli.js'

const CLIENT_CLI = fileURLToPath(new URL('../../packages/client/src/cli.ts', import.meta.url))

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

/** Runs `node --import tsx packages/client/src/cli.ts ...args` (the ilp-farm-client CLI from source), through the CLI helper. */
export function runClientCli(args: string[], env: NodeJS.ProcessEnv = {}): ClientCli {
  return asClientCli(runCli(args, { script: CLIENT_CLI, env: cleanEnv(env) }))
}

function asClientCli(run: CliRun): ClientCli {
  return {
    child: run.child,
    stdout: run.stdout,
    stderr: run.stderr,
    exited: run.exited,
    waitFor: (pattern, timeoutMs = 20_000, from = 0) => run.waitFor(pattern, timeoutMs, from),
    async kill(signal = 'SIGKILL') {
      if (signal === 'SIGKILL') return run.kill()
      run.child.kill(signal)
      await run.exited
    },
  }
}

/** The farm's tunnel server (`ilp-farm tunnel-server`) as a child process, so a test can really kill it. */
export async function startTunnelServerProcess(port = 0): Promise<{ cli: ClientCli; url: string; port: number }> {
  const cli = asClientCli(runCli(['tunnel-server', '--port', String(port)], { env: cleanEnv() }))
  const match = await cli.waitFor(/tunnel server listening on (http:\/\/127\.0\.0\.1:(\d+))/)
  return { cli, url: match[1]!, port: Number(match[2]) }
}
