/**
 * The shapes the JSON-RPC modules share: who calls (the dispatcher builds it)
 * and what a method is (the method table lists them, rpc.discover describes
 * them). Kept apart so that the dispatcher, the method table and the OpenRPC
 * document each import them without importing one another.
 */
import type { AccountConfig } from '../config/schema.js'
import type { Onboarding } from '../onboarding/onboarding.js'
import type { PaymentHistory } from '../payments/history.js'
import type { Payer } from '../payments/payer.js'
import type { PacketServices } from '../packet/context.js'

/** Who is calling: the account its bearer token belongs to, if any; and the onboarding service. */
export interface CallerContext {
  readonly account?: AccountConfig
  readonly services: PacketServices
  /** Tickets and sign-up (absent: those methods answer that onboarding is not available). */
  readonly onboarding?: Onboarding
  /** Paying from an account (ilp_pay) and the accounts' payment histories; absent: those methods answer that they are off. */
  readonly payments?: { readonly payer: Payer; readonly history: PaymentHistory }
  /** The farm as the caller reached it (http.publicUrl, else the request's origin): payment pointers start with it. */
  readonly baseUrl?: string
  /** The caller's IP address as the server sees it: sign-up limits count per address. */
  readonly ip?: string
}

/** A caller with an account: methods act on this account only. */
export interface RpcContext extends CallerContext {
  readonly account: AccountConfig
}

/** A JSON Schema (as OpenRPC embeds it). */
export type JsonSchema = Record<string, unknown>

export interface ParamSpec {
  readonly name: string
  readonly required: boolean
  readonly description: string
  readonly schema: JsonSchema
}

/**
 * One JSON-RPC method: what rpc.discover says about it and what it does.
 * `invoke` gets named params already checked against the params' schemas
 * (rpc/params.ts): no unknown name, none missing, each value of its schema.
 * It checks only what a schema cannot say (a rule over two params, the
 * farm's state or policy), throwing -32602, and throws RpcError for
 * application errors.
 */
export interface RpcMethod {
  /** Callable without a token (onboarding, discovery); `invoke` then gets no account. */
  readonly public?: false
  readonly name: string
  readonly summary: string
  readonly params: readonly ParamSpec[]
  readonly result: { readonly name: string; readonly schema: JsonSchema }
  /** Application errors it can answer with (beyond the standard ones). */
  readonly errors?: ReadonlyArray<{ code: number; message: string }>
  invoke(ctx: RpcContext, params: Record<string, unknown>): Promise<unknown>
}

/** A method anyone may call, without an account: what it needs comes in its params. */
export interface PublicRpcMethod extends Omit<RpcMethod, 'public' | 'invoke'> {
  readonly public: true
  invoke(ctx: CallerContext, params: Record<string, unknown>): Promise<unknown>
}

export type AnyRpcMethod = RpcMethod | PublicRpcMethod
