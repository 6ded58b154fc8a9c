import { rpcMethods } from './methods.js'
import {
  errorResponse,
  INTERNAL_ERROR,
  INVALID_REQUEST,
  UNAUTHORIZED,
  METHOD_NOT_FOUND,
  PARSE_ERROR,
  RpcError,
  type RpcId,
  type RpcResponse,
} from './protocol.js'
import type { AnyRpcMethod, CallerContext } from './types.js'
import { ParamsChecker } from './params.js'

const methodsByName: ReadonlyMap<string, AnyRpcMethod> = new Map(rpcMethods.map((m) => [m.name, m]))
/** Each method's params schema (the one rpc.discover publishes), compiled once. */
const paramsChecker = new ParamsChecker(rpcMethods)

function isId(value: unknown): value is RpcId {
  return value === null || typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** What one HTTP body may ask for (config rpc.*). */
export interface BatchLimits {
  /** Requests in one batch; a longer one is refused whole before any of it runs. */
  readonly maxBatch: number
  /** Requests of a batch running at once. */
  readonly batchConcurrency: number
  /** Once the answers reach this many bytes (as JSON), the requests not yet started are answered -32000, not run. */
  readonly maxResponseBytes: number
}

/** Implementation-defined server error: a request of a batch whose answers had already reached the size cap. */
export const RESPONSE_TOO_LARGE = -32000

/**
 * One HTTP body: a request or a batch. Returns what to send back, or
 * undefined when nothing is (a notification, or a batch of notifications).
 */
export async function dispatchBody(body: string, ctx: CallerContext, limits: BatchLimits): Promise<RpcResponse | RpcResponse[] | undefined> {
  let parsed: unknown
  try {
    parsed = JSON.parse(body)
  } catch {
    return errorResponse(null, { code: PARSE_ERROR, message: 'Parse error: the body is not valid JSON' })
  }
  if (Array.isArray(parsed)) {
    if (parsed.length === 0) return errorResponse(null, { code: INVALID_REQUEST, message: 'Invalid Request: empty batch' })
    if (parsed.length > limits.maxBatch) {
      return errorResponse(null, {
        code: INVALID_REQUEST,
        message: `Invalid Request: a batch of ${parsed.length} requests; at most ${limits.maxBatch} (none was run)`,
      })
    }
    const answers = await runBatch(parsed, ctx, limits)
    const sent = answers.filter((a): a is RpcResponse => a !== undefined)
    return sent.length === 0 ? undefined : sent
  }
  return dispatchOne(parsed, ctx)
}

/**
 * The members of a batch run `batchConcurrency` at a time; the answers come in the order of the requests.
 * A request that has started always runs to its end (it may move money), so the size cap stops only the
 * ones not yet started: the answer can pass the cap by at most the requests in flight when it was reached.
 */
async function runBatch(requests: unknown[], ctx: CallerContext, limits: BatchLimits): Promise<Array<RpcResponse | undefined>> {
  const answers = new Array<RpcResponse | undefined>(requests.length)
  let next = 0
  let bytes = 0
  const lane = async () => {
    while (next < requests.length) {
      const i = next++
      if (bytes >= limits.maxResponseBytes) {
        const request = requests[i]
        // a notification is not answered, run or not
        if (isPlainObject(request) && !Object.prototype.hasOwnProperty.call(request, 'id')) continue
        const id = isPlainObject(request) && isId(request.id) ? request.id : null
        answers[i] = errorResponse(id, {
          code: RESPONSE_TOO_LARGE,
          message: `Response too large: the batch's answers reached ${limits.maxResponseBytes} bytes before this request ran; it was not run`,
        })
        continue
      }
      const answer = await dispatchOne(requests[i], ctx)
      answers[i] = answer
      if (answer !== undefined) bytes += Buffer.byteLength(JSON.stringify(answer))
    }
  }
  await Promise.all(Array.from({ length: Math.min(limits.batchConcurrency, requests.length) }, lane))
  return answers
}

/** One request object: its response, or undefined for a notification (a request without an `id`). */
export async function dispatchOne(request: unknown, ctx: CallerContext): Promise<RpcResponse | undefined> {
  if (!isPlainObject(request)) return errorResponse(null, { code: INVALID_REQUEST, message: 'Invalid Request: not a JSON-RPC request object' })
  const hasId = Object.prototype.hasOwnProperty.call(request, 'id')
  const id = hasId && isId(request.id) ? request.id : null
  if (request.jsonrpc !== '2.0') return errorResponse(id, { code: INVALID_REQUEST, message: 'Invalid Request: "jsonrpc" must be "2.0"' })
  if (hasId && !isId(request.id)) return errorResponse(null, { code: INVALID_REQUEST, message: 'Invalid Request: "id" must be a string, a number or null' })
  if (typeof request.method !== 'string') return errorResponse(id, { code: INVALID_REQUEST, message: 'Invalid Request: "method" must be a string' })
  const params = request.params
  if (params !== undefined && params !== null && typeof params !== 'object') {
    return errorResponse(id, { code: INVALID_REQUEST, message: 'Invalid Request: "params" must be an object or an array' })
  }

  const method = methodsByName.get(request.method)
  let answer: RpcResponse
  if (method === undefined) {
    answer = errorResponse(id, { code: METHOD_NOT_FOUND, message: `Method not found: ${request.method}` })
  } else {
    try {
      answer = { jsonrpc: '2.0', id, result: await invoke(method, ctx, params) }
    } catch (err) {
      if (err instanceof RpcError) {
        answer = errorResponse(id, err.toObject())
      } else {
        ctx.services.log.error({ err, method: method.name, account: ctx.account?.id }, 'JSON-RPC method failed')
        answer = errorResponse(id, { code: INTERNAL_ERROR, message: 'Internal error' })
      }
    }
  }
  return hasId ? answer : undefined
}

/** A public method runs for anyone; any other needs the caller's account (-32001 without one). */
function invoke(method: AnyRpcMethod, ctx: CallerContext, params: unknown): Promise<unknown> {
  if (method.public) return method.invoke(ctx, paramsChecker.check(method, params))
  const { account } = ctx
  if (account === undefined) throw new RpcError(UNAUTHORIZED, 'Unauthorized: Authorization: Bearer <the account token> is required')
  return method.invoke({ ...ctx, account }, paramsChecker.check(method, params))
}
