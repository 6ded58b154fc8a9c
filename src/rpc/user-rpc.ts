import { type IlpPrepare, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import { Pool } from 'undici'
import { LruMap } from '../accounts/account-cache.js'
import { callbackUrlAllowed } from '../async/callback-policy.js'
import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import { OutgoingError, post } from '../http/outgoing.js'
import { isValidIlpAddress } from '../util/address.js'
import { parseHttpUrl } from '../util/url.js'
import { outgoingToken } from '../accounts/outgoing-token.js'

/** Origins with an open keep-alive pool at once (users' RPC URLs, most recently used). */
const MAX_POOLS = 1_000
/** Longest RPC URL `ilp_setRpcUrl` takes. */
export const MAX_RPC_URL_LENGTH = 2_048

/**
 * An http(s) URL without credentials, or undefined. Only printable ASCII
 * without a backslash: the WHATWG parser reads `\` as `/` and drops tabs and
 * line breaks, so such a string names another address for other parsers
 * (`http://127.0.0.1:7902\@evil/`) than the one its prefix check saw.
 */
export function parseRpcUrl(value: string): URL | undefined {
  if (value.length > MAX_RPC_URL_LENGTH || !/^[\x21-\x5b\x5d-\x7e]+$/.test(value)) return undefined
  return parseHttpUrl(value)
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
 * The users' own JSON-RPC URLs: stored in Redis under `{acct:<id>}:rpcUrl`,
 * read with the account itself (AccountRegistry) and invalidated with it, so
 * nothing polls; and the delivery of a prepare to such a URL as an
 * `ilp_receivePrepare` call (docs/JSON-RPC.md).
 */
export class UserRpc {
  /** Keep-alive pools per origin; the least recently used is closed past MAX_POOLS. */
  private readonly pools = new LruMap<string, Pool>(MAX_POOLS, (_origin, pool) => void pool.close().catch(() => undefined))
  private nextId = 1

  constructor(private readonly registry: AccountRegistry) {}

  /** The RPC URL of an account this worker has at hand (no Redis round trip). */
  url(accountId: string): string | undefined {
    return this.registry.peek(accountId)?.rpcUrl
  }

  /** The stored RPC URL (read now, not from the cache). */
  async get(accountId: string): Promise<string | null> {
    return (await this.registry.load(accountId))?.rpcUrl ?? null
  }

  /**
   * Stores (or with null, clears) an account's RPC URL, normalized (`URL.href`:
   * what was checked is what is called); every worker sees it within a round
   * trip. Throws for a URL parseRpcUrl refuses.
   */
  async set(accountId: string, url: string | null): Promise<boolean> {
    if (url === null) return this.registry.setRpcUrl(accountId, null)
    const parsed = parseRpcUrl(url)
    if (parsed === undefined) throw new Error('not an http(s) URL without credentials')
    return this.registry.setRpcUrl(accountId, parsed.href)
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
    // The account's allowed prefixes may have narrowed since the URL was set: a URL they no longer allow is not called.
    if (!callbackUrlAllowed(account, url.href)) throw bad('no longer allowed for this account')
    let pool = this.pools.get(url.origin)
    if (pool === undefined) {
      pool = new Pool(url.origin, { connections: 16, keepAliveTimeout: 30_000 })
      this.pools.set(url.origin, pool)
    }

    const headers: Record<string, string> = { 'content-type': 'application/json', accept: 'application/json' }
    const token = outgoingToken(account)
    if (token) headers.authorization = `Bearer ${token}`
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
    const pools = [...this.pools.values()]
    this.pools.clear()
    await Promise.all(pools.map((p) => p.close()))
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
