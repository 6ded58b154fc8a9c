import type { AccountConfig } from '../config/schema.js'

/**
 * The Callback-Url prefixes an account may use: its `incoming.callbackUrls`,
 * or else the origin of its `outgoing.url` (where the farm already sends its
 * packets). An account with neither cannot use async mode: the farm never
 * POSTs to an address that an account picked freely (no request forgery
 * towards internal services).
 */
export function allowedCallbackPrefixes(account: AccountConfig): string[] {
  if (account.incoming?.callbackUrls) return account.incoming.callbackUrls
  if (account.outgoing) return [`${new URL(account.outgoing.url).origin}/`]
  return []
}

/** `url` is already a normalized http(s) URL without credentials (parseCallbackUrl). */
export function callbackUrlAllowed(account: AccountConfig, url: string): boolean {
  return allowedCallbackPrefixes(account).some((prefix) => url.startsWith(prefix))
}
