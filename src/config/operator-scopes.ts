// The operator tokens' scopes and digest, as the config declares and checks them; src/http/scopes.ts
// applies them to the routes.
import { hash } from 'node:crypto'

/**
 * What an operator token may do. `admin` holds every scope; the others are
 * separate (a token needing two lists both):
 * - `read`: every GET of /admin and the dashboard's views;
 * - `metrics`: GET /metrics (a Prometheus scraper needs nothing else);
 * - `accounts`: create, update, delete, import accounts, rotate their tokens, issue tickets;
 * - `money`: deposits, withdrawals (and the settlements they trigger);
 * - `routes`: add and remove static routes;
 * - `admin`: all of the above and whatever names no narrower scope.
 */
export const SCOPES = ['read', 'metrics', 'accounts', 'money', 'routes', 'admin'] as const
export type Scope = (typeof SCOPES)[number]

/**
 * The SHA-256 digest an operator token is kept as: of its token, or its tokenHash as given (empty when it
 * has neither). The farm's check and the config's one-token-one-entry check both use it.
 */
export function operatorDigest(entry: { token?: string; tokenHash?: string }): Buffer {
  return entry.token !== undefined ? Buffer.from(hash('sha256', entry.token, 'hex'), 'hex') : Buffer.from(entry.tokenHash ?? '', 'hex')
}
