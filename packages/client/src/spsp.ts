import { SpspJsonError, spspFromJson, type StreamDestination } from '@ilp-farm/protocol'
import { request } from 'undici'

export type { StreamDestination }

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
  try {
    return spspFromJson(json)
  } catch (err) {
    if (err instanceof SpspJsonError) throw new Error(`SPSP query of ${url}: ${err.message}`)
    throw err
  }
}
