import { EventEmitter } from 'node:events'
import { connect, type Socket } from 'node:net'
import { TUNNEL_SECRET_HEADER } from '@ilp-farm/protocol'
import { request } from 'undici'

export interface TunnelOptions {
  /** The tunnel server's URL (a localtunnel server's `host`), e.g. https://localtunnel.me. */
  host: string
  /** Ask for this id (subdomain); the server may hand out another one if it is taken. */
  subdomain?: string
  /** The secret of a tunnel this client had with id `subdomain`: proves the id is ours (a dropped id stays reserved for it). */
  secret?: string
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
  /** The tunnel's id and the secret that claims it back after a drop (none from a server without secrets). */
  readonly id: string
  readonly secret: string | undefined
  readonly dropped: Promise<string>
  close(): void
}

/**
 * Whether the tunnel server answers HTTP at all: asking first tells an
 * unreachable server apart from one that refuses the tunnel, and keeps an
 * open attempt short and cancellable.
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

/**
 * A tunnel client speaking the `localtunnel` protocol (the registration
 * `GET <host>/?new` or `/<id>` and its `{ id, port, max_conn_count, url }`,
 * then `max_conn_count` TCP connections to `port`, each piped to the local
 * server and opened again when it ends), written here rather than taken
 * from the npm `localtunnel` client because that one cannot prove a
 * connection is ours: when the server's answer has a `secret` (the farm's
 * own tunnel server does), every connection sends `<secret>\n` first, and a
 * re-registration of the same id sends it as `X-Tunnel-Secret` to get the id
 * back. Against a server without secrets it behaves as the stock client.
 */
export class TunnelClient extends EventEmitter<{ error: [Error]; close: [] }> {
  private readonly sockets = new Set<Socket>()
  private closed = false

  private constructor(
    readonly id: string,
    readonly url: string,
    /** The proof of ownership the server handed out, if it uses one. */
    readonly secret: string | undefined,
    private readonly remote: { host: string; port: number },
    private readonly local: { host: string; port: number },
    maxConn: number,
  ) {
    super()
    for (let i = 0; i < maxConn; i++) this.openSocket()
  }

  static async connect(opts: {
    host: string
    subdomain?: string
    secret?: string
    localPort: number
    localHost: string
    signal?: AbortSignal
  }): Promise<TunnelClient> {
    const base = opts.host.replace(/\/+$/, '')
    const headers: Record<string, string> = opts.secret !== undefined && opts.subdomain !== undefined ? { [TUNNEL_SECRET_HEADER]: opts.secret } : {}
    const res = await request(`${base}/${opts.subdomain ?? '?new'}`, { headers, signal: opts.signal })
    const text = await res.body.text()
    let body: { id?: unknown; port?: unknown; max_conn_count?: unknown; url?: unknown; ip?: unknown; secret?: unknown; message?: unknown }
    try {
      body = JSON.parse(text) as typeof body
    } catch {
      throw new Error(`tunnel server answered ${res.statusCode} without JSON`)
    }
    if (res.statusCode !== 200) throw new Error(typeof body.message === 'string' ? body.message : `tunnel server answered ${res.statusCode}`)
    if (typeof body.id !== 'string' || typeof body.url !== 'string' || typeof body.port !== 'number') throw new Error('tunnel server answered without id, url and port')
    const maxConn = typeof body.max_conn_count === 'number' && body.max_conn_count >= 1 ? Math.min(body.max_conn_count, 100) : 1
    const remoteHost = typeof body.ip === 'string' ? body.ip : new URL(base).hostname.replace(/^\[|\]$/g, '')
    const secret = typeof body.secret === 'string' ? body.secret : undefined
    return new TunnelClient(body.id, body.url, secret, { host: remoteHost, port: body.port }, { host: opts.localHost, port: opts.localPort }, maxConn)
  }

  /** Tunnel connections open now. */
  get connected(): number {
    return this.sockets.size
  }

  private openSocket(): void {
    if (this.closed) return
    const openedAt = Date.now()
    const remote = connect({ host: this.remote.host, port: this.remote.port })
    this.sockets.add(remote)
    remote.setKeepAlive(true)
    remote.on('error', (err: NodeJS.ErrnoException) => {
      // A refused connection: the server, or our tunnel on it, is gone.
      if (err.code === 'ECONNREFUSED') this.emit('error', new Error(`connection refused: ${this.remote.host}:${this.remote.port}`))
      remote.destroy()
    })
    remote.once('connect', () => {
      if (this.secret !== undefined) remote.write(`${this.secret}\n`)
      remote.pause()
      const local = connect({ host: this.local.host, port: this.local.port })
      local.on('error', () => {
        local.destroy()
        remote.destroy()
      })
      local.once('connect', () => {
        remote.pipe(local).pipe(remote)
        remote.resume()
      })
      remote.once('close', () => local.destroy())
      local.once('close', () => remote.end())
    })
    remote.once('close', () => {
      this.sockets.delete(remote)
      if (this.closed) return
      // A connection the server closes at once (refused proof, a full tunnel) is not re-opened in a tight loop.
      const wait = Date.now() - openedAt < 1_000 ? 1_000 : 0
      setTimeout(() => this.openSocket(), wait).unref()
    })
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    for (const socket of this.sockets) socket.destroy()
    this.sockets.clear()
    this.emit('close')
  }
}

function connectTunnel(opts: TunnelOptions): Promise<TunnelClient> {
  const timeout = AbortSignal.timeout(opts.openTimeoutMs)
  const signal = opts.signal ? AbortSignal.any([timeout, opts.signal]) : timeout
  return TunnelClient.connect({ ...opts, signal }).catch((err: Error) => {
    if (opts.signal?.aborted) throw new Error('stopped')
    if (timeout.aborted) throw new Error(`no tunnel from ${opts.host} within ${opts.openTimeoutMs} ms`)
    throw new Error(`tunnel server refused: ${err.message}`)
  })
}

/**
 * Opens a tunnel with TunnelClient and watches it. It
 * counts as dropped on the client's 'error' (a refused connection to the
 * tunnel port: the server or our tunnel on it is gone), on 'close', or when
 * `probeFailures` probes through the public URL fail in a row (a server
 * that silently lost our tunnel, a connection that hangs).
 */
export async function openTunnel(opts: TunnelOptions): Promise<OpenTunnel> {
  if (!(await serverAnswers(opts.host, Math.min(opts.openTimeoutMs, 5_000), opts.signal))) throw new Error(`tunnel server ${opts.host} not reachable`)
  const tunnel = await connectTunnel(opts)
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
  return { url, id: tunnel.id, secret: tunnel.secret, dropped, close: () => drop('closed by the client') }
}
