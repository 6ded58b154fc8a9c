import { request } from 'undici'
import { z } from 'zod'
import { isValidIlpAddress } from '../util/address.js'

/** Where a STREAM payment goes: what SPSP (RFC 9) or a receiver hands out. */
export interface StreamDestination {
  destinationAccount: string
  sharedSecret: Buffer
}

const spspSchema = z.object({
  destination_account: z.string().refine(isValidIlpAddress, 'must be an ILP address'),
  shared_secret: z.string().min(1),
})

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
  const parsed = spspSchema.safeParse(json)
  if (!parsed.success) throw new Error(`SPSP query of ${url}: ${parsed.error.issues[0]?.message ?? 'not an SPSP answer'}`)
  const sharedSecret = Buffer.from(parsed.data.shared_secret, 'base64')
  if (sharedSecret.length !== 32) throw new Error(`SPSP query of ${url}: shared_secret must be 32 bytes`)
  return { destinationAccount: parsed.data.destination_account, sharedSecret }
}
