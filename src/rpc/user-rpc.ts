import { type IlpPrepare, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { Pool } from 'undici'
import type { AccountConfig } from '../config/schema.js'
import { OutgoingError, post } from '../http/outgoing.js'
import type { Keys } from '../store/keys.js'
import { isValidIlpAddress } from '../util/address.js'
import { parseHttpUrl } from '../util/url.js'

/** How often each worker re-reads the accounts' RPC URLs from Redis. */
export const RPC_URL_REFRESH_MS = 1_000
/** Longest RPC URL `ilp_setRpcUrl` takes. */
export const MAX_RPC_URL_LENGTH = 2_048

/** An http(s) URL without credentials, or undefined. */
export function parseRpcUrl(value: string): URL | undefined {
  return value.length > MAX_RPC_URL_LENGTH ? undefined : parseHttpUrl(value)
}

function decodeBase64(value: unknown): Buffer | undefined {
  if (value === undefined) return Buffer.alloc(0)
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value) || value.replace(/=+$/, '').length % 4 === 1) return undefined
  return Buffer.from(value, 'base64')
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

function bad(message: string): OutgoingError {
  return new OutgoingError('unreachable', `user RPC URL: ${message}`)
}

/**
 * The users' own JSON-RPC URLs (issue 5): stored in Redis under
 * `{acct:<id>}:rpcUrl` so every worker sees them, cached here and re-read
 * every second (the packet path only looks at the cache), and the delivery
 * of a prepare to such a URL as an `ilp_receivePrepare` call (docs/JSON-RPC.md).
 */
export class UserRpc {
  private readonly cache = new Map<string, string>()
  private readonly pools = new Map<string, Pool>()
  private timer: NodeJS.Timeout | undefined
  private refreshing = false
  private nextId = 1

  constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    /** The accounts whose URLs are read (a live view: accounts come and go at runtime). */
    private readonly accountIds: () => Iterable<string>,
    private readonly log: Logger,
    private readonly refreshMs = RPC_URL_REFRESH_MS,
  ) {}

  /** Loads the URLs once, then keeps re-reading them. */
  async start(): Promise<void> {
    await this.refresh()
    this.timer = setInterval(() => void this.refresh(), this.refreshMs)
    this.timer.unref()
  }

  /** The cached RPC URL of an account (no Redis round trip). */
  url(accountId: string): string | undefined {
    return this.cache.get(accountId)
  }

  /** The stored RPC URL (from Redis, not the cache). */
  async get(accountId: string): Promise<string | null> {
    return this.redis.get(this.keys.rpcUrl(accountId))
  }

  /** Stores (or with null, clears) an account's RPC URL; this worker sees it at once, the others within a refresh. */
  async set(accountId: string, url: string | null): Promise<void> {
    if (url === null) {
      await this.redis.del(this.keys.rpcUrl(accountId))
      this.cache.delete(accountId)
    } else {
      await this.redis.set(this.keys.rpcUrl(accountId), url)
      this.cache.set(accountId, url)
    }
  }

  private async refresh(): Promise<void> {
    const ids = [...this.accountIds()]
    if (this.refreshing) return
    this.refreshing = true
    try {
      const live = new Set(ids)
      for (const id of this.cache.keys()) if (!live.has(id)) this.cache.delete(id)
      const pipeline = this.redis.pipeline()
      for (const id of ids) pipeline.get(this.keys.rpcUrl(id))
      const results = ids.length === 0 ? [] : ((await pipeline.exec()) ?? [])
      results.forEach(([err, value], i) => {
        const id = ids[i]!
        if (err) return // keep what the cache has
        if (typeof value === 'string') this.cache.set(id, value)
        else this.cache.delete(id)
      })
      // pools towards origins no account uses any more
      const origins = new Set([...this.cache.values()].map((u) => parseRpcUrl(u)?.origin))
      for (const [origin, pool] of this.pools) {
        if (!origins.has(origin)) {
          this.pools.delete(origin)
          void pool.close().catch(() => undefined)
        }
      }
    } catch (err) {
      this.log.debug({ err }, 'could not re-read the RPC URLs; keeping the cached ones')
    } finally {
      this.refreshing = false
    }
  }

  /**
   * POSTs the prepare to the account's RPC URL as an `ilp_receivePrepare`
   * call and turns the result into ILP packet bytes (Fulfill or Reject).
   * Rejects with OutgoingError: `timeout` for no answer within timeoutMs,
   * `unreachable` for a refused connection, a non-200, invalid JSON, a
   * JSON-RPC error or a result that is neither a fulfill nor a reject.
   */
  async deliver(account: AccountConfig, rpcUrl: string, prepare: IlpPrepare, timeoutMs: number): Promise<Buffer> {
    const url = parseRpcUrl(rpcUrl)
    if (url === undefined) throw bad('not an http(s) URL')
    let pool = this.pools.get(url.origin)
    if (pool === undefined) {
      pool = new Pool(url.origin, { connections: 16, keepAliveTimeout: 30_000 })
      this.pools.set(url.origin, pool)
    }
    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    if (account.outgoing?.token) headers.authorization = `Bearer ${account.outgoing.token}`
    const id = this.nextId++
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'ilp_receivePrepare',
      params: {
        amount: prepare.amount,
        destination: prepare.destination,
        executionCondition: prepare.executionCondition.toString('base64'),
        expiresAt: prepare.expiresAt.toISOString(),
        data: prepare.data.toString('base64'),
      },
    })
    const answer = await post(pool, `${url.pathname}${url.search}`, headers, Buffer.from(body), timeoutMs, 200)
    return toPacket(answer, id)
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    await Promise.all([...this.pools.values()].map((p) => p.close()))
    this.pools.clear()
  }
}

/** A JSON-RPC response body to ILP packet bytes; OutgoingError (unreachable) for anything else. */
export function toPacket(body: Buffer, id: number): Buffer {
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch {
    throw bad('the answer is not JSON')
  }
  if (!isPlainObject(parsed) || parsed.jsonrpc !== '2.0' || parsed.id !== id) throw bad('the answer is not a JSON-RPC 2.0 response to the call')
  if (parsed.error !== undefined) {
    const message = isPlainObject(parsed.error) && typeof parsed.error.message === 'string' ? parsed.error.message : 'no message'
    throw bad(`answered with a JSON-RPC error: ${message.slice(0, 200)}`)
  }
  const result = parsed.result
  if (!isPlainObject(result)) throw bad('the result is not an object')
  const data = decodeBase64(result.data)
  if (data === undefined || data.length > 32767) throw bad('data must be base64, at most 32767 bytes')
  if (result.type === 'fulfill') {
    const fulfillment = typeof result.fulfillment === 'string' ? decodeBase64(result.fulfillment) : undefined
    if (fulfillment === undefined || fulfillment.length !== 32) throw bad('fulfillment must be 32 bytes as base64')
    return serializeIlpFulfill({ fulfillment, data })
  }
  if (result.type === 'reject') {
    const { code, triggeredBy, message } = result
    if (typeof code !== 'string' || !/^[A-Z][0-9A-Z]{2}$/.test(code)) throw bad('code must be an ILP error code such as F99')
    if (triggeredBy !== undefined && (typeof triggeredBy !== 'string' || (triggeredBy !== '' && !isValidIlpAddress(triggeredBy)))) {
      throw bad('triggeredBy must be an ILP address')
    }
    if (message !== undefined && typeof message !== 'string') throw bad('message must be a string')
    try {
      return serializeIlpReject({ code, triggeredBy: triggeredBy ?? '', message: message ?? '', data })
    } catch {
      throw bad('the reject cannot be serialized')
    }
  }
  throw bad('result.type must be "fulfill" or "reject"')
}
