import { randomBytes } from 'node:crypto'
import { Agent, type ClientRequestArgs, createServer, type IncomingHttpHeaders, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import { type Duplex, pipeline } from 'node:stream'

/**
 * A small tunnel server speaking the protocol of the npm `localtunnel`
 * client (the one of localtunnel/server), so users can run their own and
 * tests can run on loopback.
 *
 * The protocol, as `localtunnel` 2.0.2 (lib/Tunnel.js, lib/TunnelCluster.js) uses it:
 * 1. The client asks `GET <host>/?new` (any id) or `GET <host>/<id>` (that
 *    id) and gets `{ id, port, max_conn_count, url }`.
 * 2. It opens `max_conn_count` TCP connections to `port` on the server's host
 *    name and pipes each one to its local HTTP server; a connection that
 *    dies is opened again.
 * 3. The server writes each public HTTP request for the tunnel onto one of
 *    those connections (plain HTTP/1.1, keep-alive) and relays the answer.
 *
 * Public requests find their tunnel by subdomain (`Host: <id>.<domain>`,
 * when `domain` is set) or by path: `/<id>/rest` is forwarded as `/rest`, so
 * on loopback a public URL can be `http://127.0.0.1:<port>/<id>`. A bare
 * `GET /<id>` (no slash after the id) is step 1, never forwarded.
 * WebSocket upgrades are not relayed.
 */

export interface TunnelServerOptions {
  /** Port of the HTTP server (the API and the public side); 0 picks a free one. Default 0. */
  port?: number
  /** Address to listen on, for the HTTP server and every tunnel's TCP port. Default 127.0.0.1. */
  host?: string
  /** Serve tunnels as `<id>.<domain>` too (needs wildcard DNS); the URLs handed out then use it. */
  domain?: string
  /** The server's public base URL (e.g. behind a TLS proxy); default: the Host the client asked with. */
  publicUrl?: string
  /** TCP connections a client may open per tunnel (`max_conn_count`). Default 10. */
  maxSockets?: number
  /** A tunnel without any client connection for this long is removed (its id is free again). Default 5000. */
  graceMs?: number
  /** A public request waits at most this long for a free tunnel connection, then gets 504. Default 10000. */
  socketWaitMs?: number
  /** Most tunnels at once (each holds a TCP port); beyond: 503. Default 1000. */
  maxTunnels?: number
}

export interface TunnelInfo {
  id: string
  url: string
  port: number
  connectedSockets: number
}

export interface TunnelServer {
  /** Base URL of the HTTP server, e.g. `http://127.0.0.1:4567`: what clients use as `host`. */
  readonly url: string
  readonly port: number
  tunnels(): TunnelInfo[]
  close(): Promise<void>
}

/** Ids a client may ask for (those of localtunnel/server); `api` is kept for the status endpoint. */
const ID_RE = /^[a-z0-9][a-z0-9-]{2,62}$/
const RESERVED_IDS = new Set(['api'])
// Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection and are never relayed.
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = { ...headers }
  for (const name of HOP_BY_HOP) delete out[name]
  return out
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

/**
 * The pool of TCP connections one client opened for its tunnel, as an
 * http.Agent: `createConnection` hands out a connection instead of dialling
 * one (the design of localtunnel/server's TunnelAgent). With keep-alive and
 * as many free sockets as connections, a connection serves one request after
 * another and goes back to the agent's free list in between.
 */
type Give = (result: Socket | Error) => void

/** A public request found no free connection of its tunnel in time (answered 504). */
class NoFreeConnection extends Error {}

class TunnelAgent extends Agent {
  private readonly idle: Socket[] = []
  private readonly waiting: Give[] = []
  connected = 0

  constructor(
    maxSockets: number,
    private readonly socketWaitMs: number,
    private readonly onCountChange: (connected: number) => void,
  ) {
    super({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets })
  }

  /** A connection from the client: hand it to a waiting request, or keep it. */
  adopt(socket: Socket): void {
    if (this.connected >= this.maxSockets) {
      socket.destroy()
      return
    }
    this.connected++
    socket.setKeepAlive(true)
    // Errors on a client connection (reset, timeout) only end that connection; 'close' follows.
    socket.on('error', () => socket.destroy())
    socket.once('close', () => {
      this.connected--
      const i = this.idle.indexOf(socket)
      if (i >= 0) this.idle.splice(i, 1)
      this.onCountChange(this.connected)
    })
    this.onCountChange(this.connected)
    const next = this.waiting.shift()
    if (next) next(socket)
    else this.idle.push(socket)
  }

  // http.Agent calls this when it has no free socket and is below maxSockets.
  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): undefined {
    // Node's Agent passes only the error when there is no socket; its typings insist on a stream.
    const hand: Give = (result) => (result instanceof Error ? callback?.(result, undefined as unknown as Duplex) : callback?.(null, result))
    const socket = this.idle.shift()
    if (socket) {
      hand(socket)
      return undefined
    }
    let done = false
    const give: Give = (result) => {
      if (done) return
      done = true
      clearTimeout(timer)
      hand(result)
    }
    const timer = setTimeout(() => {
      const i = this.waiting.indexOf(give)
      if (i >= 0) this.waiting.splice(i, 1)
      give(new NoFreeConnection('no tunnel connection became free in time'))
    }, this.socketWaitMs)
    this.waiting.push(give)
    return undefined
  }

  override destroy(): void {
    for (const give of this.waiting.splice(0)) give(new Error('tunnel closed'))
    for (const socket of this.idle.splice(0)) socket.destroy()
    super.destroy()
  }
}

class Tunnel {
  readonly agent: TunnelAgent
  private graceTimer: NodeJS.Timeout | undefined

  constructor(
    readonly id: string,
    readonly url: string,
    private readonly tcp: TcpServer,
    maxSockets: number,
    socketWaitMs: number,
    private readonly graceMs: number,
    private readonly onExpire: (tunnel: Tunnel) => void,
  ) {
    this.agent = new TunnelAgent(maxSockets, socketWaitMs, (n) => (n === 0 ? this.armGrace() : this.disarmGrace()))
    tcp.on('connection', (socket) => this.agent.adopt(socket))
    this.armGrace() // a client that never connects does not keep its id
  }

  get port(): number {
    return (this.tcp.address() as AddressInfo).port
  }

  private armGrace(): void {
    this.disarmGrace()
    this.graceTimer = setTimeout(() => this.onExpire(this), this.graceMs)
    this.graceTimer.unref()
  }

  private disarmGrace(): void {
    if (this.graceTimer) clearTimeout(this.graceTimer)
    this.graceTimer = undefined
  }

  close(): void {
    this.disarmGrace()
    this.agent.destroy()
    this.tcp.close()
  }
}

function listenTcp(host: string): Promise<TcpServer> {
  return new Promise((resolve, reject) => {
    const tcp = createTcpServer({ pauseOnConnect: false })
    tcp.once('error', reject)
    tcp.listen(0, host, () => {
      tcp.off('error', reject)
      // Later errors are from single connections (killed clients); they end those connections only.
      tcp.on('error', () => undefined)
      resolve(tcp)
    })
  })
}

export async function startTunnelServer(opts: TunnelServerOptions = {}): Promise<TunnelServer> {
  const host = opts.host ?? '127.0.0.1'
  const maxSockets = opts.maxSockets ?? 10
  const graceMs = opts.graceMs ?? 5_000
  const socketWaitMs = opts.socketWaitMs ?? 10_000
  const maxTunnels = opts.maxTunnels ?? 1_000
  const domain = opts.domain?.toLowerCase()
  const publicBase = opts.publicUrl?.replace(/\/+$/, '')
  const tunnels = new Map<string, Tunnel>()

  const remove = (tunnel: Tunnel) => {
    if (tunnels.get(tunnel.id) === tunnel) tunnels.delete(tunnel.id)
    tunnel.close()
  }

  function tunnelUrl(id: string, req: IncomingMessage): string {
    const proto = publicBase?.startsWith('https:') ? 'https' : 'http'
    if (domain !== undefined) return `${proto}://${id}.${domain}`
    return `${publicBase ?? `http://${req.headers.host ?? `${host}:${port}`}`}/${id}`
  }

  async function create(requestedId: string | undefined, req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (requestedId !== undefined && (!ID_RE.test(requestedId) || RESERVED_IDS.has(requestedId))) {
      sendJson(res, 403, { message: 'Invalid subdomain: 3 to 63 lowercase letters, digits or hyphens, starting with a letter or digit.' })
      return
    }
    if (tunnels.size >= maxTunnels) {
      sendJson(res, 503, { message: 'too many tunnels' })
      return
    }
    const tcp = await listenTcp(host)
    // Picked after the await, so two requests for one id cannot both get it.
    // Like localtunnel/server: an id in use gets a random one instead.
    let id = requestedId !== undefined && !tunnels.has(requestedId) ? requestedId : randomBytes(5).toString('hex')
    while (tunnels.has(id)) id = randomBytes(5).toString('hex')
    const tunnel = new Tunnel(id, tunnelUrl(id, req), tcp, maxSockets, socketWaitMs, graceMs, remove)
    tunnels.set(id, tunnel)
    sendJson(res, 200, { id, port: tunnel.port, max_conn_count: maxSockets, url: tunnel.url })
  }

  function forward(tunnel: Tunnel, path: string, req: IncomingMessage, res: ServerResponse): void {
    const headers = endToEnd(req.headers)
    const peer = req.socket.remoteAddress
    if (peer !== undefined) headers['x-forwarded-for'] = headers['x-forwarded-for'] ? `${headers['x-forwarded-for']}, ${peer}` : peer
    const upstream = request({ agent: tunnel.agent, host: 'tunnel', method: req.method, path, headers })
    upstream.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, endToEnd(answer.headers))
      pipeline(answer, res, () => undefined)
    })
    upstream.on('error', (err) => {
      if (res.headersSent) res.destroy()
      else sendJson(res, err instanceof NoFreeConnection ? 504 : 502, { message: `tunnel ${tunnel.id}: ${err.message}` })
    })
    pipeline(req, upstream, () => undefined)
  }

  function route(req: IncomingMessage, res: ServerResponse): void {
    const hostname = (req.headers.host ?? '').replace(/:\d+$/, '').toLowerCase()
    if (domain !== undefined && hostname.endsWith(`.${domain}`)) {
      const tunnel = tunnels.get(hostname.slice(0, -domain.length - 1))
      if (tunnel) forward(tunnel, req.url ?? '/', req, res)
      else sendJson(res, 404, { message: `no tunnel at ${hostname}` })
      return
    }
    const rawUrl = req.url ?? '/'
    const q = rawUrl.indexOf('?')
    const pathname = q < 0 ? rawUrl : rawUrl.slice(0, q)
    const search = q < 0 ? '' : rawUrl.slice(q)
    if (pathname === '/' && req.method === 'GET' && new URLSearchParams(search).has('new')) {
      void create(undefined, req, res).catch((err: Error) => sendJson(res, 500, { message: err.message }))
      return
    }
    if (pathname === '/api/status' && req.method === 'GET') {
      sendJson(res, 200, { tunnels: tunnels.size })
      return
    }
    const match = /^\/([^/]+)(\/.*)?$/.exec(pathname)
    if (match !== null && match[2] === undefined && req.method === 'GET') {
      void create(match[1], req, res).catch((err: Error) => sendJson(res, 500, { message: err.message }))
      return
    }
    const tunnel = match === null ? undefined : tunnels.get(match[1]!)
    if (tunnel) forward(tunnel, `${match![2] ?? '/'}${search}`, req, res)
    else sendJson(res, 404, { message: 'no such tunnel' })
  }

  const server: Server = createServer(route)
  // Keep-alive towards the farm: it sends many packets to one tunnel.
  server.keepAliveTimeout = 65_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(opts.port ?? 0, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`

  return {
    url,
    port,
    tunnels: () => [...tunnels.values()].map((t) => ({ id: t.id, url: t.url, port: t.port, connectedSockets: t.agent.connected })),
    async close() {
      for (const tunnel of tunnels.values()) tunnel.close()
      tunnels.clear()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
