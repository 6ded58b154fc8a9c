import { parseHttpUrl } from '../util/url.js'

/**
 * The request headers of async ILP-over-HTTP (RFC 35 draft 3):
 * `Prefer: respond-async`, `Callback-Url`, `Request-Id`.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/**
 * A Request-Id in the canonical UUID text form (RFC 4122; the RFC asks for a
 * UUIDv4, any version is accepted), lower-cased: UUIDs compare case-insensitively,
 * so `ABC…` and `abc…` name the same request. Undefined for anything else.
 */
export function normalizeRequestId(value: string): string | undefined {
  return UUID.test(value) ? value.toLowerCase() : undefined
}

export function isRequestId(value: string): boolean {
  return UUID.test(value)
}

/** True when a Prefer header (RFC 7240) asks for `respond-async`. */
export function prefersAsync(prefer: string | undefined): boolean {
  if (!prefer) return false
  return prefer.split(',').some((pref) => pref.split(';')[0]!.trim().toLowerCase() === 'respond-async')
}

/** An absolute http(s) URL the farm may POST a reply to, or undefined. */
export function parseCallbackUrl(value: string): string | undefined {
  return parseHttpUrl(value)?.href
}

/** One header value: fastify gives string[] for a repeated header, which is refused. */
export function singleHeader(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined
}
