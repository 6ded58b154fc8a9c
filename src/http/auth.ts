import { hash, timingSafeEqual } from 'node:crypto'

/** Tokens are compared as SHA-256 digests: fixed length, constant time, and the plain token is never kept. */
export function tokenDigest(token: string): Buffer {
  return hash('sha256', token, 'buffer') // one call, no Hash object, no hex between: this runs per request
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header || header.length < 8 || header.slice(0, 7).toLowerCase() !== 'bearer ') return undefined
  return header.slice(7).trim()
}

/** True when the Authorization header carries the token whose digest is expected. */
export function authorized(header: string | undefined, expected: Buffer | undefined): boolean {
  const token = bearerToken(header)
  if (token === undefined || expected === undefined) return false
  return timingSafeEqual(tokenDigest(token), expected)
}
