import type { IlpPrepare } from 'ilp-packet'
import type { Logger } from 'pino'
import type { AccountDirectory, AccountRegistry } from '../accounts/registry.js'
import type { Settlements } from '../accounts/settlement.js'
import type { AsyncReplies } from '../async/replies.js'
import type { RequestIds } from '../store/request-ids.js'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import type { FarmMetrics } from '../metrics/farm-metrics.js'
import type { Rates } from '../rates/rates.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import type { CcpResponder } from '../routing/ccp-responder.js'
import type { Candidate } from '../routing/routing-table.js'
import type { UserRpc } from '../rpc/user-rpc.js'
import type { Ledger, SendingLimits } from '../store/ledger.js'
import type { Resolver } from './resolver.js'

/** What the packet path needs from the worker it runs in. */
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
  readonly ccp?: CcpResponder
  /** Exchange rates between the accounts' assets (config `rates`), precomputed per asset pair. */
  readonly rates: Rates
  readonly ledger: Ledger
  readonly outgoing: OutgoingClient
  readonly resolver: Resolver
  /** Replay guard of incoming Request-Ids (only packets that carry one touch it). */
  readonly requestIds: RequestIds
  /** Outbound async ILP-over-HTTP: sends to `outgoing.mode: async` next hops and takes their callbacks. */
  readonly asyncReplies: AsyncReplies
  /** Settlement requests: checked after a fulfill credits an account with a settleThreshold. */
  readonly settlements?: Settlements
  /** The users' own JSON-RPC URLs (ilp_setRpcUrl) and delivery of prepares to them; absent: never used. */
  readonly userRpc?: UserRpc
  /** Farm-wide metrics: handlePrepare reports each packet answered; absent: nothing is counted. */
  readonly metrics?: FarmMetrics
  readonly log: Logger
}

/** One packet as it arrived, before routing. */
export interface PacketContext {
  readonly from: AccountConfig
  readonly raw: Buffer
  readonly prepare: IlpPrepare
  /** Unique per incoming account while in flight: the Request-Id, or a hash of the packet. */
  readonly packetId: string
}

/** A context after routing and the expiry check: everything needed to reserve and forward. */
export interface RoutedPacket extends PacketContext {
  readonly nextHop: AccountConfig
  /** The next hop's user's own JSON-RPC URL, when it receives through one. */
  readonly nextHopRpcUrl: string | undefined
  /** The route candidate chosen: the settle step records the outcome against it. */
  readonly candidate: Candidate
  readonly outAmount: string
  readonly outExpiresAt: Date
}
