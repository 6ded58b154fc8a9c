import { Agent, type Dispatcher, request } from 'undici'
import type { HealthView } from './views.js'

/** Where the farm's admin API is and how to authenticate (see target.ts for where these come from). */
export interface FarmTarget {
  /** Base URL without a trailing slash, e.g. http://127.0.0.1:7768. */
  url: string
  token: string
  /** PEM certificates trusted in addition to Node's roots (a self-signed farm). */
  ca?: string[]
}

/**
 * The farm answered, but not with success (or could not be reached): exit
 * code 1. `body` is the farm's JSON answer when there was one, so `--json`
 * can pass it on to scripts unchanged.
 */
export class FarmError extends Error {
  constructor(
    message: string,
    readonly status?: number,
    readonly body?: unknown,
  ) {
    super(message)
    this.name = 'FarmError'
  }
}

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

/** A body already serialized as JSON: sent as it is (a large batch joined from lines that are JSON already). */
export class JsonText {
  constructor(readonly text: string) {}
}

interface Answer {
  status: number
  json: unknown
}

const DEFAULT_TIMEOUT_MS = 15_000

/** A tiny client of /admin/... and /health: bearer token, JSON in and out, errors as FarmError. */
export class AdminClient {
  private readonly agent: Agent

  constructor(
    readonly target: FarmTarget,
    private readonly timeoutMs = DEFAULT_TIMEOUT_MS,
  ) {
    // One connection is plenty for a CLI; the timeouts keep a hung farm from hanging the operator's shell.
    this.agent = new Agent({
      connections: 4,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      connect: { timeout: Math.min(timeoutMs, 5_000), ...(target.ca ? { ca: target.ca } : {}) },
    })
  }

  get<T>(path: string): Promise<T> {
    return this.expect<T>('GET', path)
  }

  post<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.expect<T>('POST', path, body, headers)
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.expect<T>('PUT', path, body)
  }

  delete<T>(path: string): Promise<T> {
    return this.expect<T>('DELETE', path)
  }

  /** GET /health: 503 is an answer here (Redis down), not an error. */
  async health(): Promise<{ status: number; body: HealthView | undefined }> {
    const { status, json } = await this.call('GET', '/health', undefined, {}, false)
    return { status, body: isObject(json) ? (json as unknown as HealthView) : undefined }
  }

  close(): Promise<void> {
    return this.agent.close()
  }

  private async expect<T>(method: Method, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const answer = await this.call(method, path, body, headers, true)
    if (answer.status >= 200 && answer.status < 300) return answer.json as T
    throw refusal(method, path, answer)
  }

  private async call(method: Method, path: string, body: unknown, headers: Record<string, string>, auth: boolean): Promise<Answer> {
    const url = `${this.target.url}${path}`
    const sent: Record<string, string> = { accept: 'application/json', ...headers }
    if (auth) sent.authorization = `Bearer ${this.target.token}`
    if (body !== undefined) sent['content-type'] = 'application/json'
    let res: Dispatcher.ResponseData
    try {
      res = await request(url, {
        method,
        headers: sent,
        body: body === undefined ? undefined : body instanceof JsonText ? body.text : JSON.stringify(body),
        dispatcher: this.agent,
      })
    } catch (err) {
      throw unreachable(this.target.url, err, this.timeoutMs)
    }
    const text = await res.body.text()
    return { status: res.statusCode, json: parseJson(text) }
  }
}

function parseJson(text: string): unknown {
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    // Not the admin API (a proxy's HTML page, another service on the port): keep the text for the message.
    return text
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** The farm's own words first: `{ error, issues? }` as every admin route answers. */
function refusal(method: Method, path: string, answer: Answer): FarmError {
  const { status, json } = answer
  const lines: string[] = []
  if (isObject(json) && typeof json.error === 'string') {
    lines.push(`the farm refused ${method} ${path} (HTTP ${status}): ${json.error}`)
    // Each issue on its own line, unless the error's text already lists it.
    for (const issue of Array.isArray(json.issues) ? json.issues : []) {
      const text = isObject(issue) ? `${String(issue.path ?? '(root)')}: ${String(issue.message ?? '')}` : String(issue)
      if (!json.error.includes(text)) lines.push(`  - ${text}`)
    }
  } else {
    const excerpt = typeof json === 'string' ? `: ${json.slice(0, 200)}` : ''
    lines.push(`the farm answered ${method} ${path} with HTTP ${status}${excerpt}`)
  }
  if (status === 401) lines.push('check the admin token: --token, ILP_FARM_ADMIN_TOKEN, or admin.token in --config')
  if (status === 403 && isObject(json) && typeof json.scope === 'string') {
    lines.push(`use a token with the scope ${json.scope} (admin.tokens in the farm's config) or admin.token`)
  }
  if (status === 404 && !(isObject(json) && typeof json.error === 'string')) {
    lines.push('this farm may be older than this CLI (no such admin route)')
  }
  return new FarmError(lines.join('\n'), status, json)
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused (is the farm running, and on this port?)',
  ECONNRESET: 'the connection was reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host name lookup failed',
  EHOSTUNREACH: 'host unreachable',
  ETIMEDOUT: 'connection timed out',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'the connection was closed',
}

const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL/

function errorCode(err: unknown): string | undefined {
  if (!(err instanceof Error)) return undefined
  const own = (err as { code?: unknown }).code
  if (typeof own === 'string' && own !== 'UND_ERR') return own
  // A host with several addresses (localhost: ::1 and 127.0.0.1) fails with an AggregateError.
  if (err instanceof AggregateError && err.errors.length > 0) return errorCode(err.errors[0])
  return errorCode(err.cause)
}

function unreachable(url: string, err: unknown, timeoutMs: number): FarmError {
  const code = errorCode(err)
  let reason: string
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') reason = `no answer within ${timeoutMs / 1000} s`
  else if (code !== undefined && TLS_CODES.test(code)) {
    reason = `TLS: ${(err as Error).message} (${code}); for a self-signed farm give its certificate with --ca FILE`
  } else if (code !== undefined && NETWORK_REASONS[code]) reason = `${NETWORK_REASONS[code]} (${code})`
  else reason = err instanceof Error ? err.message || err.name : String(err)
  return new FarmError(`cannot reach the farm at ${url}: ${reason}`)
}
