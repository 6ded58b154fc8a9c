import localtunnel from 'localtunnel'
import { request } from 'undici'

export interface TunnelOptions {
  /** The tunnel server's URL (the `localtunnel` client's `host`), e.g. https://localtunnel.me. */
  host: string
  /** Ask for this id (subdomain); the server may hand out another one if it is taken. */
  subdomain?: string
  /** The local HTTP server the tunnel leads to. */
  localPort: number
  localHost: string
  /** Give up opening after this long. */
  openTimeoutMs: number
  /** Checks that the public URL (tunnel URL) still reaches the local server. */
  probe: (tunnelUrl: string) => Promise<boolean>
  probeIntervalMs: number
  /** Consecutive failed probes that count as a dropped tunnel. */
  probeFailures: number
  /** Aborts an attempt to open (the client is stopping). */
  signal?: AbortSignal
}

/** An open tunnel: its public URL, a promise that resolves (with why) once it has dropped, and close(). */
export interface OpenTunnel {
  readonly url: string
  readonly dropped: Promise<string>
  close(): void
}

/**
 * Whether the tunnel server answers HTTP at all. `localtunnel` itself
 * retries an unreachable server every second, forever, with no way to stop
 * it; asking first keeps an open attempt short and cancellable.
 */
async function serverAnswers(host: string, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
  const timeout = AbortSignal.timeout(timeoutMs)
  try {
    const res = await request(`${host.replace(/\/+$/, '')}/api/status`, { signal: signal ? AbortSignal.any([timeout, signal]) : timeout })
    await res.body.dump()
    return true
  } catch {
    return false
  }
}

function connect(opts: TunnelOptions): Promise<localtunnel.Tunnel> {
  return new Promise((resolve, reject) => {
    let settled = false
    const settle = (err: Error | undefined) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', aborted)
      if (err === undefined) return resolve(tunnel)
      tunnel.close()
      reject(err)
    }
    const tunnel = localtunnel({ port: opts.localPort, host: opts.host, subdomain: opts.subdomain, local_host: opts.localHost }, (err) =>
      settle(err ? new Error(`tunnel server refused: ${String(err)}`) : undefined),
    )
    // Without a listener an 'error' event would throw; errors are watched once the tunnel is open.
    tunnel.on('error', () => undefined)
    const timer = setTimeout(() => settle(new Error(`no tunnel from ${opts.host} within ${opts.openTimeoutMs} ms`)), opts.openTimeoutMs)
    const aborted = () => settle(new Error('stopped'))
    opts.signal?.addEventListener('abort', aborted, { once: true })
    if (opts.signal?.aborted) aborted()
  })
}

/**
 * Opens a tunnel with the npm `localtunnel` client and watches it. It
 * counts as dropped on the client's 'error' (a refused connection to the
 * tunnel port: the server or our tunnel on it is gone), on 'close', or when
 * `probeFailures` probes through the public URL fail in a row (a server
 * that silently lost our tunnel, a connection that hangs).
 */
export async function openTunnel(opts: TunnelOptions): Promise<OpenTunnel> {
  if (!(await serverAnswers(opts.host, Math.min(opts.openTimeoutMs, 5_000), opts.signal))) throw new Error(`tunnel server ${opts.host} not reachable`)
  const tunnel = await connect(opts)
  const url = tunnel.url.replace(/\/+$/, '')

  let markDropped: (reason: string) => void = () => undefined
  const dropped = new Promise<string>((resolve) => (markDropped = resolve))
  let done = false
  let failures = 0
  let probing = false

  const drop = (reason: string) => {
    if (done) return
    done = true
    clearInterval(timer)
    tunnel.close()
    markDropped(reason)
  }
  const probeOnce = async () => {
    if (probing || done) return
    probing = true
    try {
      failures = (await opts.probe(url)) ? 0 : failures + 1
      if (failures >= opts.probeFailures) drop(`${failures} probes through ${url} failed`)
    } finally {
      probing = false
    }
  }

  tunnel.on('error', (err: Error) => drop(`tunnel error: ${err.message}`))
  tunnel.on('close', () => drop('tunnel closed'))
  const timer = setInterval(() => void probeOnce(), opts.probeIntervalMs)
  timer.unref()
  return { url, dropped, close: () => drop('closed by the client') }
}
