import { randomBytes, timingSafeEqual } from 'node:crypto'
import { Agent, type ClientRequestArgs, createServer, type IncomingHttpHeaders, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer, type Socket } from 'node:net'
import { type Duplex, pipeline } from 'node:stream'
import { TUNNEL_SECRET_HEADER } from '@ilp-farm/protocol'

/**
 * A small tunnel server speaking the protocol of the npm `localtunnel`
 * client (the one of localtunnel/server), so operators can run their own
 * (`ilp-farm tunnel-server`) for their users' clients and tests can run on
 * loopback. It is a server: it lives with the farm; the client package
 * (ilp-farm-client) has only the tunnel's client side.
 *
 * The protocol, as `localtunnel` 2.0.2 (lib/Tunnel.js, lib/TunnelCluster.js) uses it:
 * 1. The client asks `GET <host>/?new` (any id) or `GET <host>/<id>` (that
 *    id) and gets `{ id, port, max_conn_count, url }`, and from this server
 *    also `secret`: 64 hex digits, the tunnel's proof of ownership.
 * 2. It opens `max_conn_count` TCP connections to `port` on the server's host
 *    name and pipes each one to its local HTTP server; a connection that
 *    dies is opened again. Here each connection must first send the line
 *    `<secret>\n` (ilp-farm-client's tunnel.ts does; the stock `localtunnel`
 *    client cannot, so this server does not serve it): the port is open to
 *    anyone, and a connection adopted without proof would receive the
 *    tunnel's public requests (its secret paths, the farm's bearer token)
 *    and answer them. A connection without the right line within
 *    `handshakeMs` is closed.
 * 3. The server writes each public HTTP request for the tunnel onto one of
 *    those connections (plain HTTP/1.1, keep-alive) and relays the answer.
 *
 * An id whose client has been gone for `graceMs` stays reserved for
 * `reserveMs`: only a `GET /<id>` with the header `X-Tunnel-Secret: <secret>`
 * gets it back (with the same secret), so nobody else can take over the
 * public URL a farm still calls. The same proof takes over a live id (a
 * client re-opening before the server noticed the drop). Without it a
 * taken or reserved id gets a random one, as localtunnel/server does.
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
  /** A tunnel connection must send its secret line within this long. Default 5000. */
  handshakeMs?: number
  /** How long the id of a tunnel whose client is gone stays reserved for the holder of its secret. Default 600000. */
  reserveMs?: number
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
const SECRET_RE = /^[0-9a-f]{64}$/
/** Connections of one tunnel that may be proving themselves at once (beyond: closed at once). */
const MAX_HANDSHAKES_PER_TUNNEL = 32
/** Ids kept reserved at most (the oldest reservation goes first). */
const MAX_RESERVATIONS = 10_000

function sameSecret(given: string | undefined, secret: string): boolean {
  if (given === undefined || !SECRET_RE.test(given)) return false
  return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(secret, 'hex'))
}

/**
 * Reads the first line of a tunnel connection and checks it is the secret.
 * On success the socket is paused with any bytes after the line put back,
 * ready for the HTTP client; on failure or after timeoutMs it is destroyed.
 */
function proveOwnership(socket: Socket, secret: string, timeoutMs: number, onProved: () => void): void {
  let buffered = Buffer.alloc(0)
  const done = (proved: boolean, rest?: Buffer) => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('close', onClose)
    if (!proved) {
      socket.destroy()
      return
    }
    socket.pause()
    if (rest !== undefined && rest.length > 0) socket.unshift(rest)
    onProved()
  }
  const onData = (chunk: Buffer) => {
    buffered = Buffer.concat([buffered, chunk])
    const nl = buffered.indexOf(10)
    if (nl < 0) {
      if (buffered.length > 128) done(false)
      return
    }
    done(sameSecret(buffered.subarray(0, nl).toString('latin1').trim(), secret), buffered.subarray(nl + 1))
  }
  const onClose = () => done(false)
  const timer = setTimeout(() => done(false), timeoutMs)
  timer.unref()
  socket.on('data', onData)
  socket.once('close', onClose)
  // Errors (reset) end this connection only; 'close' follows.
  socket.on('error', () => socket.destroy())
}
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
    const hand: Give = (result) => {
      if (result instanceof Error) return callback?.(result, undefined as unknown as Duplex)
      callback?.(null, result)
      // Paused since its proof was read (so nothing it sent was lost); the request reads it from here.
      result.resume()
    }
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
  private proving = 0
  /** Whether a connection ever proved itself: only such a tunnel's id is reserved once it is gone. */
  everConnected = false

  constructor(
    readonly id: string,
    readonly url: string,
    readonly secret: string,
    private readonly tcp: TcpServer,
    maxSockets: number,
    socketWaitMs: number,
    handshakeMs: number,
    private readonly graceMs: number,
    private readonly onExpire: (tunnel: Tunnel) => void,
  ) {
    this.agent = new TunnelAgent(maxSockets, socketWaitMs, (n) => (n === 0 ? this.armGrace() : this.disarmGrace()))
    tcp.on('connection', (socket) => {
      if (this.proving >= MAX_HANDSHAKES_PER_TUNNEL) {
        socket.destroy()
        return
      }
      this.proving++
      let counted = true
      const uncount = () => {
        if (counted) this.proving--
        counted = false
      }
      socket.once('close', uncount)
      proveOwnership(socket, secret, handshakeMs, () => {
        uncount()
        this.everConnected = true
        this.agent.adopt(socket)
      })
    })
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
  const handshakeMs = opts.handshakeMs ?? 5_000
  const reserveMs = opts.reserveMs ?? 600_000
  const domain = opts.domain?.toLowerCase()
  const publicBase = opts.publicUrl?.replace(/\/+$/, '')
  const tunnels = new Map<string, Tunnel>()
  /** Ids of tunnels whose client is gone → their secret, until reserveMs has passed. */
  const reserved = new Map<string, { secret: string; timer: NodeJS.Timeout }>()

  const unreserve = (id: string) => {
    const r = reserved.get(id)
    if (r === undefined) return
    clearTimeout(r.timer)
    reserved.delete(id)
  }

  const remove = (tunnel: Tunnel) => {
    if (tunnels.get(tunnel.id) === tunnel) {
      tunnels.delete(tunnel.id)
      if (tunnel.everConnected) {
        if (reserved.size >= MAX_RESERVATIONS) unreserve(reserved.keys().next().value!)
        const timer = setTimeout(() => unreserve(tunnel.id), reserveMs)
        timer.unref()
        reserved.set(tunnel.id, { secret: tunnel.secret, timer })
      }
    }
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
    // The holder of a taken or reserved id's secret gets it back, with that secret;
    // like localtunnel/server, anyone else gets a random id instead.
    const given = req.headers[TUNNEL_SECRET_HEADER]
    const proof = typeof given === 'string' ? given.toLowerCase() : undefined
    let id: string
    let secret = randomBytes(32).toString('hex')
    const held = requestedId === undefined ? undefined : (tunnels.get(requestedId)?.secret ?? reserved.get(requestedId)?.secret)
    if (requestedId !== undefined && held === undefined) id = requestedId
    else if (requestedId !== undefined && held !== undefined && sameSecret(proof, held)) {
      id = requestedId
      secret = held
      const old = tunnels.get(id)
      if (old !== undefined) {
        tunnels.delete(id)
        old.close()
      }
      unreserve(id)
    } else id = randomBytes(5).toString('hex')
    while (id !== requestedId && (tunnels.has(id) || reserved.has(id))) id = randomBytes(5).toString('hex')
    const tunnel = new Tunnel(id, tunnelUrl(id, req), secret, tcp, maxSockets, socketWaitMs, handshakeMs, graceMs, remove)
    tunnels.set(id, tunnel)
    sendJson(res, 200, { id, port: tunnel.port, max_conn_count: maxSockets, url: tunnel.url, secret })
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
      for (const id of [...reserved.keys()]) unreserve(id)
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
