import type { IlpPrepare } from 'ilp-packet'
import { Pool } from 'undici'
import { prepareToJson, replyFromJson } from '@ilp-farm/protocol'

/** The farm answered with a JSON-RPC error object (docs/JSON-RPC.md, "Errors"). */
export class FarmRpcError extends Error {
  override readonly name = 'FarmRpcError'
  constructor(
    readonly code: number,
    message: string,
    readonly data?: unknown,
  ) {
    super(message)
  }
}

/** No usable answer at all: connection failed, timeout, a status other than 200, a body that is not a JSON-RPC response. */
export class FarmTransportError extends Error {
  override readonly name = 'FarmTransportError'
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message)
  }
}

/** The calling account as `ilp_getAccountInfo` describes it. */
export interface AccountInfo {
  accountId: string
  relation: 'parent' | 'peer' | 'child'
  ilpAddress: string | null
  connectorAddress: string
  assetCode: string
  assetScale: number
  /** What ilp_setRpcUrl accepts: URLs starting with one of these (absent from farms that do not say). */
  allowedUrlPrefixes?: string[]
}

/** The calling account's balance and limits (`ilp_getBalance`), in its base units. */
export interface Balance {
  balance: string
  minBalance: string
  maxBalance: string | null
  maxPacketAmount: string | null
}

type Check = (value: unknown) => boolean
const isString: Check = (v) => typeof v === 'string'
const isStringOrNull: Check = (v) => v === null || typeof v === 'string'

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * A farm's result as T when every field passes its check (other fields are
 * dropped); FarmTransportError naming the first field that does not.
 */
function shaped<T>(method: string, value: unknown, fields: Record<string, Check>, optional: Record<string, Check> = {}): T {
  if (!isRecord(value)) throw new FarmTransportError(`${method}: the result is not an object`)
  const out: Record<string, unknown> = {}
  for (const [name, check] of Object.entries(fields)) {
    if (!check(value[name])) throw new FarmTransportError(`${method}: the result's ${name} is missing or of the wrong type`)
    out[name] = value[name]
  }
  for (const [name, check] of Object.entries(optional)) {
    if (value[name] === undefined) continue
    if (!check(value[name])) throw new FarmTransportError(`${method}: the result's ${name} is of the wrong type`)
    out[name] = value[name]
  }
  return out as T
}

const ACCOUNT_INFO = {
  accountId: isString,
  relation: (v: unknown) => v === 'parent' || v === 'peer' || v === 'child',
  ilpAddress: isStringOrNull,
  connectorAddress: isString,
  assetCode: isString,
  assetScale: Number.isInteger,
}
const ACCOUNT_INFO_OPTIONAL = { allowedUrlPrefixes: (v: unknown) => Array.isArray(v) && v.every(isString) }
const BALANCE = { balance: isString, minBalance: isString, maxBalance: isStringOrNull, maxPacketAmount: isStringOrNull }

const DEFAULT_TIMEOUT_MS = 30_000
/** A prepare's call gets until its expiry plus this: the farm answers at the latest when the packet expires. */
const SEND_PREPARE_SLACK_MS = 2_000

/**
 * JSON-RPC 2.0 client of a farm's `POST /rpc`, over one undici keep-alive
 * pool. The bearer token is the account: every method acts on it.
 */
export class FarmRpc {
  private readonly pool: Pool
  private readonly path: string
  private nextId = 1

  constructor(
    rpcUrl: string,
    /** The account's token; undefined for the public methods (onboarding). Replaced by rotateToken(). */
    private token: string | undefined,
    opts: { connections?: number } = {},
  ) {
    const url = new URL(rpcUrl)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`rpc URL must be http(s): ${rpcUrl}`)
    this.pool = new Pool(url.origin, { connections: opts.connections ?? 32, keepAliveTimeout: 30_000 })
    this.path = `${url.pathname}${url.search}`
  }

  /** One call; resolves with `result`, rejects with FarmRpcError (an error object) or FarmTransportError. */
  async call(method: string, params?: Record<string, unknown>, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<unknown> {
    const id = this.nextId++
    const body = JSON.stringify({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) })
    let status: number
    let text: string
    try {
      const res = await this.pool.request({
        path: this.path,
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(this.token === undefined ? {} : { authorization: `Bearer ${this.token}` }),
        },
        body,
        signal: AbortSignal.timeout(timeoutMs),
      })
      status = res.statusCode
      text = await res.body.text()
    } catch (err) {
      throw new FarmTransportError(`${method}: farm not reachable: ${(err as Error).message}`)
    }
    return this.resultOf(method, id, status, text)
  }

  private resultOf(method: string, id: number, status: number, text: string): unknown {
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new FarmTransportError(`${method}: HTTP ${status}, body is not JSON`, status)
    }
    if (!isResponse(json)) throw new FarmTransportError(`${method}: HTTP ${status}, not a JSON-RPC response`, status)
    const { error, result } = json
    // A 401 carries a JSON-RPC error with id null: report it as what it is.
    if (error !== undefined) throw new FarmRpcError(error.code, `${method}: ${error.message}`, error.data)
    if (status !== 200 || json.id !== id) throw new FarmTransportError(`${method}: HTTP ${status}, answer to another call`, status)
    return result
  }

  async getAccountInfo(): Promise<AccountInfo> {
    return shaped<AccountInfo>('ilp_getAccountInfo', await this.call('ilp_getAccountInfo'), ACCOUNT_INFO, ACCOUNT_INFO_OPTIONAL)
  }

  async getBalance(): Promise<Balance> {
    return shaped<Balance>('ilp_getBalance', await this.call('ilp_getBalance'), BALANCE)
  }

  /** Registers (or with null, clears) the account's RPC URL; resolves with the URL as stored. */
  async setRpcUrl(url: string | null): Promise<string | null> {
    return shaped<{ url: string | null }>('ilp_setRpcUrl', await this.call('ilp_setRpcUrl', { url }), { url: isStringOrNull }).url
  }

  async getRpcUrl(): Promise<string | null> {
    return shaped<{ url: string | null }>('ilp_getRpcUrl', await this.call('ilp_getRpcUrl'), { url: isStringOrNull }).url
  }

  /**
   * Replaces the account's token (`ilp_rotateToken`) and resolves with the new
   * one, shown this once: store it. This client sends it from now on; the old
   * one stops working at the farm.
   */
  async rotateToken(): Promise<string> {
    const { token } = shaped<{ token: string }>('ilp_rotateToken', await this.call('ilp_rotateToken'), { token: (v) => typeof v === 'string' && v !== '' })
    this.token = token
    return token
  }

  /** Sends a Prepare through the farm; resolves with the serialized Fulfill or Reject. */
  async sendPrepare(prepare: IlpPrepare): Promise<Buffer> {
    const timeoutMs = Math.max(prepare.expiresAt.getTime() - Date.now(), 0) + SEND_PREPARE_SLACK_MS
    const result = await this.call('ilp_sendPrepare', { ...prepareToJson(prepare) }, timeoutMs)
    return replyFromJson(result)
  }

  async close(): Promise<void> {
    await this.pool.close()
  }
}

interface RpcResponse {
  jsonrpc: '2.0'
  id: string | number | null
  result?: unknown
  error?: { code: number; message: string; data?: unknown }
}

/** A JSON-RPC 2.0 response: its id, and a result or an error object with a numeric code and a message. */
function isResponse(value: unknown): value is RpcResponse {
  if (!isRecord(value) || value.jsonrpc !== '2.0') return false
  const { id, error } = value
  if (id !== null && typeof id !== 'string' && typeof id !== 'number') return false
  return error === undefined || (isRecord(error) && typeof error.code === 'number' && typeof error.message === 'string')
}
