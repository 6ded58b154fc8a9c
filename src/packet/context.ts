/**
 * The services of a worker, as the HTTP, JSON-RPC, admin and dashboard parts
 * use them. The packet pipeline takes the part of them it needs
 * (PipelineDeps, pipeline.ts), each step its own (the steps' *Deps types).
 * Everything here is typed from the packet core's own interfaces (ports.ts)
 * or from the folders below it: the transports, which sit above, are wired
 * in by src/farm/worker.ts.
 */
import type { Logger } from 'pino'
import type { AccountDirectory, AccountRegistry } from '../accounts/registry.js'
import type { Settlements } from '../accounts/settlement.js'
import type { FarmMetrics } from '../metrics/farm-metrics.js'
import type { Rates } from '../rates/rates.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import type { Ledger, SendingLimits } from '../store/ledger.js'
import type { RequestIds } from '../store/request-ids.js'
import type { CcpHandler, NextHopTransports } from './ports.js'
import type { Resolver } from './resolver.js'

/** The users' own JSON-RPC URLs (ilp_setRpcUrl), stored with their accounts: UserRpc (src/rpc/user-rpc.ts). */
export interface RpcUrls {
  /** The stored RPC URL (read now, not from the cache). */
  get(accountId: string): Promise<string | null>
  /** Stores (or with null, clears) an account's RPC URL; throws for a URL that is not an http(s) URL without credentials. */
  set(accountId: string, url: string | null): Promise<boolean>
}

/** What the worker's parts (the packet path among them) need from the worker they run in. */
export interface PacketServices {
  readonly ilpAddress: string
  readonly shard: number
  readonly minMessageWindowMs: number
  readonly maxHoldTimeMs: number
  /** Defaults of the accounts' sending limits (config `limits`); an account's own field wins. */
  readonly limits?: SendingLimits
  /** The accounts: pinned and cached ones at hand, any other one round trip away. */
  readonly accounts: AccountDirectory
  /** Where the accounts live (Redis, pub/sub): tokens, writes. */
  readonly registry: AccountRegistry
  /** The address mapper: routing table, policy, outcome counters. */
  readonly routes: AddressMapper
  /** Route announcements (CCP): answers peer.route.control / peer.route.update; absent: those get F02. */
  readonly ccp?: CcpHandler
  /** Exchange rates between the accounts' assets (config `rates`), precomputed per asset pair. */
  readonly rates: Rates
  readonly ledger: Ledger
  /** The ways of reaching a next hop: sync or async ILP-over-HTTP, or a user's own RPC URL. */
  readonly transports: NextHopTransports
  readonly resolver: Resolver
  /** Replay guard of incoming Request-Ids (only packets that carry one touch it). */
  readonly requestIds: RequestIds
  /** Settlement requests: checked after a fulfill credits an account with a settleThreshold. */
  readonly settlements?: Settlements
  /** The users' own JSON-RPC URLs; absent: ilp_setRpcUrl and ilp_getRpcUrl are not available. */
  readonly userRpc?: RpcUrls
  /** The farm's address for its users (http.publicUrl); absent: the origin each request came to stands for it. */
  readonly publicUrl?: string
  /** Farm-wide metrics: handlePrepare reports each packet answered; absent: nothing is counted. */
  readonly metrics?: FarmMetrics
  readonly log: Logger
}
