/**
 * The client side of the peers' protocol, ILP-over-HTTP (RFC 35): the
 * packet core's sync transport (NextHopTransport) and what CCP and async
 * ILP-over-HTTP send with.
 */
import { Pool } from 'undici'
import { LruMap } from '../accounts/account-cache.js'
import type { AccountConfig } from '../config/schema.js'
import { outgoingToken } from '../accounts/outgoing-token.js'
import { type NextHopTransport, OutgoingError, type RoutedPacket } from '../packet/ports.js'

interface Target {
  pool: Pool
  path: string
  headers: Record<string, string>
}

/** Origins with an open keep-alive pool at once; the least recently used is closed past this. */
const MAX_POOLS = 1_000
/** Accounts whose path and headers are kept ready (many accounts may share one origin's pool). */
const MAX_TARGETS = 50_000

/**
 * ILP-over-HTTP towards next hops: one keep-alive pool per origin (undici),
 * shared by every account whose outgoing.url is there, the account's bearer
 * token, a hard deadline per packet. Both maps are bounded: a farm of many
 * accounts keeps the ones in use.
 */
export class OutgoingClient implements NextHopTransport {
  private readonly pools = new LruMap<string, Pool>(MAX_POOLS, (_origin, pool) => void pool.close().catch(() => undefined))
  private readonly targets = new LruMap<string, Target>(MAX_TARGETS)

  constructor(private readonly connectionsPerPeer = 128) {}

  private target(account: AccountConfig): Target {
    let target = this.targets.get(account.id)
    if (target === undefined || target.pool.closed || target.pool.destroyed) {
      if (!account.outgoing) throw new OutgoingError('unreachable', `account ${account.id} has no outgoing.url`)
      const url = new URL(account.outgoing.url)
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
      const token = outgoingToken(account)
      if (token) headers.authorization = `Bearer ${token}`
      let pool = this.pools.get(url.origin)
      if (pool === undefined) {
        pool = new Pool(url.origin, { connections: this.connectionsPerPeer, keepAliveTimeout: 30_000 })
        this.pools.set(url.origin, pool)
      }
      target = { pool, path: `${url.pathname}${url.search}`, headers }
      this.targets.set(account.id, target)
    }
    return target
  }

  /** The packet core's sync transport: the answer in the response, by the packet's outgoing expiry. */
  forward(packet: RoutedPacket, bytes: Buffer): Promise<Buffer> {
    return this.send(packet.nextHop, bytes, packet.outExpiresAt.getTime() - Date.now())
  }

  /**
   * POSTs the packet; resolves with the body of a 200, rejects with
   * OutgoingError otherwise. Uses undici's dispatch API directly: the body is
   * a few hundred bytes and a stream per response would cost more than the hop.
   */
  send(account: AccountConfig, packet: Buffer, timeoutMs: number): Promise<Buffer> {
    const { pool, path, headers } = this.target(account)
    return post(pool, path, headers, packet, timeoutMs, 200)
  }

  /**
   * Async ILP-over-HTTP (RFC 35 draft 3): POSTs the packet with the extra
   * headers (`Prefer`, `Request-Id`, `Callback-Url`) and resolves once the
   * next hop answers 202; any other answer, or none in time, rejects with
   * OutgoingError. The reply itself comes later to the callback URL.
   */
  async sendAsync(account: AccountConfig, packet: Buffer, timeoutMs: number, extraHeaders: Record<string, string>): Promise<void> {
    const { pool, path, headers } = this.target(account)
    await post(pool, path, { ...headers, ...extraHeaders }, packet, timeoutMs, 202)
  }

  /**
   * Forgets an account's path and token (its outgoing.url or token changed, or
   * it was deleted); the next packet takes them anew. The origin's pool stays
   * for the other accounts there (an origin no account uses is closed once the
   * LRU lets it go).
   */
  forget(accountId: string): void {
    this.targets.delete(accountId)
  }

  async close(): Promise<void> {
    const pools = [...this.pools.values()]
    this.pools.clear()
    this.targets.clear()
    await Promise.all(pools.map((p) => p.close()))
  }
}

/** Largest answer body taken from a next hop (the inbound limit is 40000 bytes). */
export const MAX_REPLY_BYTES = 64 * 1024

/** One POST with a hard deadline; resolves with the body when the status is the expected one. Also used for user RPC URLs (src/rpc/user-rpc.ts). */
export function post(
  pool: Pool,
  path: string,
  headers: Record<string, string>,
  packet: Buffer,
  timeoutMs: number,
  expectedStatus: 200 | 202,
): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    let settled = false
    let timedOut = false
    let abort: ((err?: Error) => void) | undefined
    let status = 0
    let received = 0
    const chunks: Buffer[] = []
    const finish = (err: OutgoingError | undefined, body?: Buffer) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(body!)
    }
    const timer = setTimeout(() => {
      timedOut = true
      finish(new OutgoingError('timeout', `no answer from the next hop within ${timeoutMs} ms`))
      // A request still queued is aborted when it reaches a socket: it is never sent late.
      abort?.(new Error('deadline'))
    }, Math.max(0, timeoutMs))
    // undici's own handler interface (onConnect/onHeaders/...): the newer one (onRequestStart/...)
    // goes through a wrapper that turns every response's raw headers and trailers into objects,
    // which this path never reads.
    pool.dispatch(
      { method: 'POST', path, headers, body: packet },
      {
        onConnect(a) {
          abort = a
          if (timedOut) a(new Error('deadline'))
        },
        onHeaders(statusCode) {
          status = statusCode
          return true
        },
        onData(chunk) {
          received += chunk.length
          // An ILP reply is well under this; a hop that sends more is misbehaving, not owed our memory.
          if (received > MAX_REPLY_BYTES) {
            finish(new OutgoingError('unreachable', `next hop answered more than ${MAX_REPLY_BYTES} bytes`))
            abort?.(new Error('reply too large'))
            return false
          }
          chunks.push(chunk)
          return true
        },
        onComplete() {
          if (status !== expectedStatus) finish(new OutgoingError(status >= 500 && status <= 599 ? 'unavailable' : 'unreachable', `next hop answered HTTP ${status}`))
          else finish(undefined, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))
        },
        onError(err) {
          finish(new OutgoingError('unreachable', `next hop unreachable: ${err.message}`))
        },
      },
    )
  })
}
