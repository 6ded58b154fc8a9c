/** JSON-RPC 2.0 (https://www.jsonrpc.org/specification): the error codes and shapes the farm uses. */

export const PARSE_ERROR = -32700
export const INVALID_REQUEST = -32600
export const METHOD_NOT_FOUND = -32601
export const INVALID_PARAMS = -32602
export const INTERNAL_ERROR = -32603
/** Implementation-defined server error (reserved range): bad or missing bearer token (HTTP 401). */
export const UNAUTHORIZED = -32001
/** Application error: the farm refuses what was asked for an ILP reason; `data.ilpCode` names it (F02, R01, F08, ...). */
export const ILP_ERROR = 1
/** An account could not be made: bad or used ticket, wrong proof of work, id taken (data.reason says which). */
export const ONBOARDING_REFUSED = 2
/** A payment (ilp_pay, ilp_getPayment) could not be made or found; `data.reason` says why. */
export const PAYMENT_ERROR = 3

export type RpcId = string | number | null

export interface RpcErrorObject {
  code: number
  message: string
  data?: { ilpCode?: string; reason?: string; [key: string]: unknown }
}

export interface RpcResponse {
  jsonrpc: '2.0'
  id: RpcId
  result?: unknown
  error?: RpcErrorObject
}

/** Thrown by a method to answer with a JSON-RPC error. */
export class RpcError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly ilpCode?: string,
    /** Extra `data` fields (besides ilpCode). */
    readonly extra?: Record<string, unknown>,
  ) {
    super(message)
    this.name = 'RpcError'
  }

  toObject(): RpcErrorObject {
    const data = { ...(this.ilpCode === undefined ? {} : { ilpCode: this.ilpCode }), ...this.extra }
    return Object.keys(data).length === 0 ? { code: this.code, message: this.message } : { code: this.code, message: this.message, data }
  }
}

export function errorResponse(id: RpcId, error: RpcErrorObject): RpcResponse {
  return { jsonrpc: '2.0', id, error }
}

export function invalidParams(message: string): RpcError {
  return new RpcError(INVALID_PARAMS, `Invalid params: ${message}`)
}
