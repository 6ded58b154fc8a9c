/** Where a child account is paid through the farm-hosted receiver. */
export interface ReceivingAddress {
  /** `$host/path/accounts/<id>/spsp`: what a sender types (a pointer always means https). */
  paymentPointer: string
  /** The SPSP URL itself, as the farm is reached (http on a test farm). */
  spspUrl: string
}

/**
 * The payment pointer of `accountId` at the farm reached at `baseUrl`
 * (http.publicUrl, else the origin a request came to).
 */
export function receivingAddress(baseUrl: string, accountId: string): ReceivingAddress {
  const base = new URL(baseUrl)
  const path = `${base.pathname.replace(/\/+$/, '')}/accounts/${encodeURIComponent(accountId)}/spsp`
  return { paymentPointer: `$${base.host}${path}`, spspUrl: `${base.origin}${path}` }
}

/** The farm's base URL for a request: its public URL when configured, else the origin the request came to. */
export function baseUrlOf(publicUrl: string | undefined, request: { protocol: string; host: string }): string {
  return publicUrl ?? `${request.protocol}://${request.host}`
}
