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

/**
 * `url` is already a normalized http(s) URL without credentials (parseCallbackUrl).
 * A prefix `https://*.tunnel.example/` also matches any one host label in place of
 * the `*` (tunnel servers such as LocalTunnel hand out `https://<random>.<domain>`).
 */
export function callbackUrlAllowed(account: AccountConfig, url: string): boolean {
  return allowedCallbackPrefixes(account).some((prefix) => matchesPrefix(url, prefix))
}

function matchesPrefix(url: string, prefix: string): boolean {
  const wildcard = prefix.indexOf('://*.')
  if (wildcard < 0) return url.startsWith(prefix)
  const scheme = prefix.slice(0, wildcard + 3)
  if (!url.startsWith(scheme)) return false
  const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\./.exec(url.slice(scheme.length))
  return label !== null && url.slice(scheme.length + label[0].length).startsWith(prefix.slice(wildcard + 5))
}
