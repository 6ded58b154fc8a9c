import { type ChildProcess, spawn } from 'node:child_process'
import { accessSync, chmodSync, constants, mkdirSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, join, resolve } from 'node:path'

export const REDIS_MISSING_HELP =
  'redis-server was not found. Install it (Debian/Ubuntu: apt-get install -y redis-server; macOS: brew install redis), ' +
  'set REDIS_SERVER_BIN to its path, or point the farm at a running Redis with REDIS_URL=redis://host:6379 (or redis.url in the config).'

export class RedisBinaryMissingError extends Error {
  constructor() {
    super(REDIS_MISSING_HELP)
    this.name = 'RedisBinaryMissingError'
  }
}

export interface EmbeddedRedisOptions {
  dataDir: string
  /** Fixed port (to restart on the same address); default: a free loopback port. */
  port?: number
  appendfsync?: 'always' | 'everysec' | 'no'
  /** Append-only persistence; tests of a throwaway Redis may turn it off. */
  appendonly?: boolean
  bin?: string
  /** More redis-server arguments (a cluster node's, for instance). */
  extraArgs?: string[]
  /**
   * A password every client must give (requirepass). Handed over on the
   * child's standard input, never on its command line, which any local user
   * can read; the URL then carries it.
   */
  password?: string
}

export interface EmbeddedRedis {
  readonly url: string
  readonly port: number
  readonly dataDir: string
  readonly process: ChildProcess
  /** SIGTERM (Redis flushes its append-only file) and wait for the exit. */
  stop(): Promise<void>
}

function findBinary(bin: string): string | undefined {
  const candidates = bin.includes('/') ? [resolve(bin)] : (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, bin))
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}

/** A port nobody listens on right now at `host` (default loopback). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, host, () => {
      const address = server.address()
      const port = typeof address === 'object' && address ? address.port : 0
      server.close(() => resolvePort(port))
    })
  })
}

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((done) => {
    const timer = setTimeout(() => done(false), timeoutMs)
    child.once('exit', () => {
      clearTimeout(timer)
      done(true)
    })
  })
}

/**
 * Starts a redis-server child on loopback, with append-only persistence in
 * dataDir. Resolves once Redis accepts connections.
 */
export async function startEmbeddedRedis(opts: EmbeddedRedisOptions): Promise<EmbeddedRedis> {
  const bin = findBinary(opts.bin ?? process.env.REDIS_SERVER_BIN ?? 'redis-server')
  if (!bin) throw new RedisBinaryMissingError()
  const dataDir = resolve(opts.dataDir)
  // balances and the append-only file are the farm's alone: no other local user reads them
  mkdirSync(dataDir, { recursive: true, mode: 0o700 })
  chmodSync(dataDir, 0o700)
  const port = opts.port ?? (await freePort())
  const args = [
    ...(opts.password === undefined ? [] : ['-']), // '-': the rest of the config comes on standard input
    '--port', String(port),
    '--bind', '127.0.0.1',
    '--protected-mode', 'yes',
    '--dir', dataDir,
    '--appendonly', opts.appendonly === false ? 'no' : 'yes',
    '--appendfsync', opts.appendfsync ?? 'everysec',
    '--save', '',
    '--daemonize', 'no',
    '--logfile', '',
    ...(opts.extraArgs ?? []),
  ]
  // Own process group: a Ctrl+C in the terminal reaches the supervisor, which stops Redis last.
  const child = spawn(bin, args, { stdio: [opts.password === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], detached: true })
  if (opts.password !== undefined) child.stdin?.end(`requirepass "${opts.password}"\n`)
  let output = ''
  await new Promise<void>((ready, fail) => {
    const onData = (chunk: Buffer) => {
      output += chunk.toString()
      if (output.includes('Ready to accept connections')) {
        cleanup()
        ready()
      }
    }
    const onExit = (code: number | null) => {
      cleanup()
      fail(new Error(`redis-server exited (code ${code}) before it was ready:\n${output.slice(-2000)}`))
    }
    const onError = (err: Error) => {
      cleanup()
      fail(err)
    }
    const cleanup = () => {
      child.stdout?.off('data', onData)
      child.off('exit', onExit)
      child.off('error', onError)
    }
    child.stdout?.on('data', onData)
    child.on('exit', onExit)
    child.on('error', onError)
  })
  // Keep draining its output so the pipe never fills up.
  child.stdout?.resume()
  child.stderr?.resume()
  // Last resort: whatever way this process ends, its Redis does not outlive it.
  const killOnExit = () => child.kill('SIGTERM')
  process.once('exit', killOnExit)
  child.once('exit', () => process.off('exit', killOnExit))
  return {
    url: opts.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(opts.password)}@127.0.0.1:${port}`,
    port,
    dataDir,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return
      child.kill('SIGTERM')
      if (!(await waitForExit(child, 15_000))) {
        child.kill('SIGKILL')
        await waitForExit(child, 5_000)
      }
    },
  }
}
