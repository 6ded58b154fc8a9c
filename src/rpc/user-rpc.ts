import { PacketJsonError, prepareToJson, replyFromJson } from '@ilp-farm/protocol'
import type { IlpPrepare } from 'ilp-packet'
import { Pool } from 'undici'
import { LruMap } from '../accounts/account-cache.js'
import { callbackUrlAllowed } from '../async/callback-policy.js'
import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import { type NextHopTransport, OutgoingError, type RoutedPacket } from '../packet/ports.js'
import { post } from '../peers/outgoing.js'
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
export class UserRpc implements NextHopTransport {
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

  /** The packet core's transport to a next hop whose user set an RPC URL: the prepare with the farm's amount and expiry. */
  forward(packet: RoutedPacket): Promise<Buffer> {
    if (packet.nextHopRpcUrl === undefined) return Promise.reject(bad('none set'))
    const prepare = { ...packet.prepare, amount: packet.outAmount, expiresAt: packet.outExpiresAt }
    return this.deliver(packet.nextHop, packet.nextHopRpcUrl, prepare, packet.outExpiresAt.getTime() - Date.now())
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
    const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'ilp_receivePrepare', params: prepareToJson(prepare) })
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
  try {
    return replyFromJson(parsed.result)
  } catch (err) {
    if (err instanceof PacketJsonError) throw bad(`result: ${err.message}`)
    throw err
  }
}
