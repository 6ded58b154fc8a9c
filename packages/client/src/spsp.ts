import { isValidIlpAddress } from 'ilp-packet'
import { decodeBase64 } from '@ilp-farm/protocol'
import { request } from 'undici'

/** Where a STREAM payment goes: what SPSP (RFC 9) or a receiver hands out. */
export interface StreamDestination {
  destinationAccount: string
  sharedSecret: Buffer
}

/**
 * A payment pointer (`$wallet.example/alice`, RFC payment-pointers: https,
 * `/.well-known/pay` when there is no path) or an http(s) SPSP URL, as the
 * URL to query.
 */
export function spspUrlOf(pointerOrUrl: string): string {
  if (!pointerOrUrl.startsWith('$')) return pointerOrUrl
  const url = new URL(`https://${pointerOrUrl.slice(1)}`)
  if (url.pathname === '/') url.pathname = '/.well-known/pay'
  return url.toString()
}

/** Queries an SPSP endpoint for a STREAM destination address and shared secret. */
export async function resolveSpsp(pointerOrUrl: string, timeoutMs = 10_000): Promise<StreamDestination> {
  const url = spspUrlOf(pointerOrUrl)
  const res = await request(url, { headers: { accept: 'application/spsp4+json' }, signal: AbortSignal.timeout(timeoutMs) })
  const text = await res.body.text()
  if (res.statusCode !== 200) throw new Error(`SPSP query of ${url} answered HTTP ${res.statusCode}`)
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    throw new Error(`SPSP query of ${url}: the answer is not JSON`)
  }
  const answer = (json !== null && typeof json === 'object' ? json : {}) as { destination_account?: unknown; shared_secret?: unknown }
  const destinationAccount = answer.destination_account
  if (typeof destinationAccount !== 'string' || !isValidIlpAddress(destinationAccount)) {
    throw new Error(`SPSP query of ${url}: destination_account must be an ILP address`)
  }
  const secret = typeof answer.shared_secret === 'string' ? decodeBase64(answer.shared_secret) : undefined
  if (secret === undefined || secret.length !== 32) throw new Error(`SPSP query of ${url}: shared_secret must be 32 bytes as base64`)
  return { destinationAccount, sharedSecret: secret }
}
