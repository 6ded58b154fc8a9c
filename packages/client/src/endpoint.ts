import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { IlpPrepare } from 'ilp-packet'
import { localReject, PacketJsonError, prepareFromJson, type ReplyJson, replyToJson } from '@ilp-farm/protocol'

/** What an SPSP query (RFC 9) answers: a fresh STREAM address and its shared secret. */
export interface SpspDetails {
  destinationAccount: string
  sharedSecret: Buffer
}

export interface LocalEndpointOptions {
  /** Default 127.0.0.1: only the tunnel client (or a farm on this host) needs to reach it. */
  host?: string
  /** Default 0: a free port. */
  port?: number
  /** Answers one incoming Prepare with a serialized Fulfill or Reject. */
  onPrepare: (prepare: IlpPrepare) => Promise<Buffer>
  /** Answers `GET /spsp` when set and it returns details; else 404. */
  spsp?: () => Promise<SpspDetails | undefined>
  /** If the account has an `outgoing.token`, the farm sends it as `Authorization: Bearer`; set it here to require it. */
  bearerToken?: string
}

const MAX_BODY_BYTES = 256 * 1024
export const SPSP_PATH = '/spsp'

function digest(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

/** Constant-time string comparison (through digests, so lengths do not leak either). */
function sameSecret(a: string, b: string): boolean {
  return timingSafeEqual(digest(a), digest(b))
}

function sendJson(res: ServerResponse, status: number, body: unknown, contentType = 'application/json'): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) })
  res.end(text)
}

function rpcError(id: unknown, code: number, message: string): unknown {
  return { jsonrpc: '2.0', id: id ?? null, error: { code, message } }
}

function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    req.on('data', (chunk: Buffer) => {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        resolve(undefined)
        req.destroy()
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * The client's own HTTP endpoint, the one its RPC URL leads to (through the
 * tunnel). The farm calls `ilp_receivePrepare` at `POST <secretPath>`; the
 * path holds 192 random bits because the farm sends no token for an account
 * without `outgoing.token`, and a forged call could otherwise make a receiver
 * count money the farm never moved. `GET <secretPath>?probe=<nonce>` answers
 * an HMAC of the nonce under a key that never leaves this process, so the
 * client can check its public URL really reaches it (and not whoever took
 * over the tunnel's id). `GET /spsp` serves SPSP when receiving.
 */
export class LocalEndpoint {
  /** Path (with its leading slash) of the JSON-RPC endpoint: the secret part of the registered URL. */
  readonly secretPath = `/${randomBytes(24).toString('base64url')}`
  private readonly probeKey = randomBytes(32)
  private server: Server | undefined
  private boundPort = 0

  constructor(private readonly opts: LocalEndpointOptions) {}

  get host(): string {
    return this.opts.host ?? '127.0.0.1'
  }

  get port(): number {
    return this.boundPort
  }

  /** The endpoint's own base URL, e.g. `http://127.0.0.1:4567` (without the secret path). */
  get url(): string {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host
    return `http://${h}:${this.boundPort}`
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => {
      this.route(req, res).catch(() => {
        if (!res.headersSent) sendJson(res, 500, { message: 'internal error' })
        else res.destroy()
      })
    })
    // Tunnel connections are kept open between packets; longer than the tunnel server keeps them idle.
    server.keepAliveTimeout = 120_000
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.opts.port ?? 0, this.host, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    this.boundPort = (server.address() as AddressInfo).port
  }

  /** What `GET <secretPath>?probe=<nonce>` answers. */
  probeAnswer(nonce: string): string {
    return createHmac('sha256', this.probeKey).update(nonce).digest('base64url')
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://endpoint')
    if (sameSecret(url.pathname, this.secretPath)) {
      if (req.method === 'POST') return this.handleRpc(req, res)
      if (req.method === 'GET' && url.searchParams.has('probe')) {
        return sendJson(res, 200, { probe: this.probeAnswer(url.searchParams.get('probe') ?? '') })
      }
      return sendJson(res, 405, { message: 'method not allowed' })
    }
    if (url.pathname === SPSP_PATH && req.method === 'GET' && this.opts.spsp) {
      const details = await this.opts.spsp()
      if (details) {
        const body = { destination_account: details.destinationAccount, shared_secret: details.sharedSecret.toString('base64') }
        return sendJson(res, 200, body, 'application/spsp4+json')
      }
    }
    sendJson(res, 404, { message: 'not found' })
  }

  private authorized(req: IncomingMessage): boolean {
    const expected = this.opts.bearerToken
    if (expected === undefined) return true
    return sameSecret(req.headers.authorization ?? '', `Bearer ${expected}`)
  }

  private async handleRpc(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (!this.authorized(req)) return sendJson(res, 401, rpcError(null, -32001, 'Unauthorized'))
    const body = await readBody(req)
    if (body === undefined) return sendJson(res, 413, rpcError(null, -32600, 'request too large'))
    let call: unknown
    try {
      call = JSON.parse(body.toString('utf8'))
    } catch {
      return sendJson(res, 200, rpcError(null, -32700, 'Parse error'))
    }
    if (!isObject(call) || call.jsonrpc !== '2.0' || typeof call.method !== 'string') {
      return sendJson(res, 200, rpcError(null, -32600, 'Invalid Request: one JSON-RPC 2.0 request object expected'))
    }
    const { id, method, params } = call
    if (method !== 'ilp_receivePrepare') return sendJson(res, 200, rpcError(id, -32601, `Method not found: ${method}`))
    let prepare: IlpPrepare
    try {
      prepare = prepareFromJson(params)
    } catch (err) {
      if (err instanceof PacketJsonError) return sendJson(res, 200, rpcError(id, -32602, `Invalid params: ${err.message}`))
      throw err
    }
    const result = await this.answer(prepare)
    // A notification (no id) gets no answer; the farm always sends an id.
    if (id === undefined) {
      res.writeHead(204).end()
      return
    }
    sendJson(res, 200, { jsonrpc: '2.0', id, result })
  }

  /** The handler's answer as JSON; R00 if it does not come before the prepare expires (the farm has given up by then). */
  private async answer(prepare: IlpPrepare): Promise<ReplyJson> {
    const expired = () => localReject('R00', prepare.destination, 'the prepare expired before it was answered')
    const msLeft = prepare.expiresAt.getTime() - Date.now()
    if (msLeft <= 0) return replyToJson(expired())
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<Buffer>((resolve) => {
      timer = setTimeout(() => resolve(expired()), msLeft)
    })
    try {
      return replyToJson(await Promise.race([this.opts.onPrepare(prepare), deadline]))
    } catch {
      return replyToJson(localReject('T00', prepare.destination, 'the receiver failed to handle the prepare'))
    } finally {
      clearTimeout(timer)
    }
  }

  async close(): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}
