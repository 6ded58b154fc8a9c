import { Pool } from 'undici'
import type { AccountConfig } from '../config/schema.js'

/** Why a packet did not get an answer from the next hop. */
export class OutgoingError extends Error {
  constructor(
    readonly reason: 'timeout' | 'unreachable',
    message: string,
  ) {
    super(message)
    this.name = 'OutgoingError'
  }
}

interface Target {
  pool: Pool
  path: string
  headers: Record<string, string>
}

/**
 * ILP-over-HTTP towards next hops: one keep-alive pool per account URL
 * (undici), the account's bearer token, a hard deadline per packet.
 */
export class OutgoingClient {
  private readonly targets = new Map<string, Target>()

  constructor(private readonly connectionsPerPeer = 128) {}

  private target(account: AccountConfig): Target {
    let target = this.targets.get(account.id)
    if (!target) {
      if (!account.outgoing) throw new OutgoingError('unreachable', `account ${account.id} has no outgoing.url`)
      const url = new URL(account.outgoing.url)
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
      if (account.outgoing.token) headers.authorization = `Bearer ${account.outgoing.token}`
      target = {
        pool: new Pool(url.origin, { connections: this.connectionsPerPeer, keepAliveTimeout: 30_000 }),
        path: `${url.pathname}${url.search}`,
        headers,
      }
      this.targets.set(account.id, target)
    }
    return target
  }

  /** POSTs the packet; resolves with the body of a 200, rejects with OutgoingError otherwise. */
  async send(account: AccountConfig, packet: Buffer, timeoutMs: number): Promise<Buffer> {
    const { pool, path, headers } = this.target(account)
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), Math.max(0, timeoutMs))
    try {
      const res = await pool.request({ method: 'POST', path, headers, body: packet, signal: abort.signal })
      const body = Buffer.from(await res.body.arrayBuffer())
      if (res.statusCode !== 200) {
        throw new OutgoingError('unreachable', `next hop answered HTTP ${res.statusCode}`)
      }
      return body
    } catch (err) {
      if (err instanceof OutgoingError) throw err
      if (abort.signal.aborted) throw new OutgoingError('timeout', `no answer from the next hop within ${timeoutMs} ms`)
      throw new OutgoingError('unreachable', `next hop unreachable: ${(err as Error).message}`)
    } finally {
      clearTimeout(timer)
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.targets.values()].map((t) => t.pool.close()))
    this.targets.clear()
  }
}
