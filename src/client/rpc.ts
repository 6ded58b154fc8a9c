import type { IlpPrepare } from 'ilp-packet'
import { Pool } from 'undici'
import { z } from 'zod'
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

const accountInfoSchema = z.object({
  accountId: z.string(),
  relation: z.enum(['parent', 'peer', 'child']),
  ilpAddress: z.string().nullable(),
  connectorAddress: z.string(),
  assetCode: z.string(),
  assetScale: z.number().int(),
  /** What ilp_setRpcUrl accepts: URLs starting with one of these (absent from farms that do not say). */
  allowedUrlPrefixes: z.array(z.string()).optional(),
})
export type AccountInfo = z.infer<typeof accountInfoSchema>

const balanceSchema = z.object({
  balance: z.string(),
  minBalance: z.string(),
  maxBalance: z.string().nullable(),
  maxPacketAmount: z.string().nullable(),
})
export type Balance = z.infer<typeof balanceSchema>

const rpcUrlSchema = z.object({ url: z.string().nullable() })
const newTokenSchema = z.object({ token: z.string().min(1) })

const responseSchema = z.object({
  jsonrpc: z.literal('2.0'),
  id: z.union([z.string(), z.number(), z.null()]),
  result: z.unknown().optional(),
  error: z.object({ code: z.number(), message: z.string(), data: z.unknown().optional() }).optional(),
})

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
    const parsed = responseSchema.safeParse(json)
    if (!parsed.success) throw new FarmTransportError(`${method}: HTTP ${status}, not a JSON-RPC response`, status)
    const { error, result } = parsed.data
    // A 401 carries a JSON-RPC error with id null: report it as what it is.
    if (error !== undefined) throw new FarmRpcError(error.code, `${method}: ${error.message}`, error.data)
    if (status !== 200 || parsed.data.id !== id) throw new FarmTransportError(`${method}: HTTP ${status}, answer to another call`, status)
    return result
  }

  async getAccountInfo(): Promise<AccountInfo> {
    return accountInfoSchema.parse(await this.call('ilp_getAccountInfo'))
  }

  async getBalance(): Promise<Balance> {
    return balanceSchema.parse(await this.call('ilp_getBalance'))
  }

  /** Registers (or with null, clears) the account's RPC URL; resolves with the URL as stored. */
  async setRpcUrl(url: string | null): Promise<string | null> {
    return rpcUrlSchema.parse(await this.call('ilp_setRpcUrl', { url })).url
  }

  async getRpcUrl(): Promise<string | null> {
    return rpcUrlSchema.parse(await this.call('ilp_getRpcUrl')).url
  }

  /**
   * Replaces the account's token (`ilp_rotateToken`) and resolves with the new
   * one, shown this once: store it. This client sends it from now on; the old
   * one stops working at the farm.
   */
  async rotateToken(): Promise<string> {
    const { token } = newTokenSchema.parse(await this.call('ilp_rotateToken'))
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
