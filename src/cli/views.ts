import type { CandidateView } from '../routing/address-mapper.js'
/**
 * What the CLI reads from the admin API (src/http/admin.ts and README,
 * "Endpoints"). Only the fields the CLI shows are listed; `--json` prints the
 * API's answer as it came, with every field, so nothing here narrows it.
 */

/** GET /admin/accounts/{id}, one element of GET /admin/accounts. */
export interface AccountView {
  id: string
  relation: string
  assetCode: string
  assetScale: number
  /** Decimal string in base units: positive, the farm owes the holder; negative, the holder owes the farm. */
  balance: string
  creditsInFlight?: string
  minBalance: string
  /** null: no upper limit. */
  maxBalance: string | null
  maxPacketAmount: string | null
  /** Crossing it upwards requests a settlement down to settleTo (null: never). Farms before settlements lack both. */
  settleThreshold?: string | null
  settleTo?: string | null
  /** Where the account comes from: "config", "admin" (added at runtime), "ticket" or "signup". */
  origin?: string | null
  /** The URL prefixes the farm calls for it (RPC URL, async Callback-Urls): incoming.callbackUrls or their default. */
  allowedUrlPrefixes?: string[]
  /** Its RPC URL (ilp_setRpcUrl), if set. */
  rpcUrl?: string | null
  // The rest of the account, so `accounts update` can send it back whole; farms older than the CLI lack some.
  /** null: no incoming token. `callbackUrls` null: unset (the default applies). */
  incoming?: { callbackUrls: string[] | null } | null
  outgoing?: { url: string; mode: string; hasToken?: boolean } | null
  parallelism?: number | null
  metrics?: boolean | null
  routes?: string[]
  sendRoutes?: boolean
  receiveRoutes?: boolean
}

/** GET /admin/accounts[?cursor=ID&limit=N]: one page in id order; `nextCursor` is the cursor of the next page, null on the last. */
export interface AccountsPage {
  accounts: AccountView[]
  nextCursor: string | null
  /** How many accounts the farm has in all, where it says. */
  count?: number
}

/** One element of POST /admin/accounts/import's `results`, in the order of the accounts sent (the server's own type). */
export type { ImportLineResult as ImportResult } from '../accounts/service.js'

/** POST /admin/accounts → 201. `token` only when the farm generated it (shown this once). */
export interface AddedAccount {
  account: AccountView
  token?: string
}

/** DELETE /admin/accounts/{id} → 200. */
export interface RemovedAccount {
  id: string
  balance: string
}

/** POST /admin/accounts/{id}/deposits | withdrawals → 200. */
export interface TransferResult {
  id: string
  amount: string
  balance: string
  /** false: this Idempotency-Key was applied before; nothing changed now. */
  applied: boolean
  /** Set when this change took the balance across the account's settleThreshold: the settlement request's id. */
  settlementId?: string
}

/** One element of GET /admin/inflight (= /admin/hotset): a packet between prepare and settle (the server's own type). */
export type { HotSetEntry as InflightEntry } from '../store/ledger.js'

/** One element of GET /admin/workers' `workers`. */
export interface WorkerView {
  /** The supervisor it runs under (`farm.hostId`). */
  hostId: string
  shard: number
  bootId: string
  pid: number
  host: string
  startedAt: number
  heartbeatAgeMs: number
  /** The TTL the worker gave its heartbeat: older than this it counts as dead. */
  ttlMs: number
  leader: boolean
}

/** GET /admin/workers. */
export interface WorkersView {
  leader: string | null
  /** Host id of the leader (null: no leader). */
  leaderHostId: string | null
  /** Each host with live workers: its worker count, whether the leader is one of them. */
  hosts: Array<{ hostId: string; workers: number; leader: boolean }>
  /** By host id, then shard. */
  workers: WorkerView[]
}

/** One candidate (next hop) of a prefix in GET /admin/routes (the server's own type). */
export type { CandidateView }

export interface RouteView {
  prefix: string
  candidates: CandidateView[]
}

/** GET /admin/routes. */
export interface RoutesView {
  policy: string
  /** The farm's address: `<ilpAddress>.<id>` goes to child <id>, with no table entry. */
  ilpAddress: string
  routes: RouteView[]
}

/** GET /health (no token needed): 200 ok, 503 when Redis is down. */
export interface HealthView {
  status: string
  redis: string
}

/** PUT / DELETE /admin/routes/{prefix}. */
export interface RouteChange {
  prefix: string
  candidates: string[]
}
