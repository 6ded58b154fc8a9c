import type { IlpPrepare } from 'ilp-packet'
import type { Logger } from 'pino'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../http/outgoing.js'
import type { RoutingTable } from '../routing/routing-table.js'
import type { Ledger } from '../store/ledger.js'
import type { Resolver } from './resolver.js'

/** What the packet path needs from the worker it runs in. */
export interface PacketServices {
  readonly ilpAddress: string
  readonly shard: number
  readonly minMessageWindowMs: number
  readonly maxHoldTimeMs: number
  readonly accounts: ReadonlyMap<string, AccountConfig>
  readonly routes: RoutingTable
  readonly ledger: Ledger
  readonly outgoing: OutgoingClient
  readonly resolver: Resolver
  readonly log: Logger
}

/** One packet on its way through the pipeline; steps fill in what they decide. */
export interface PacketContext {
  readonly from: AccountConfig
  readonly raw: Buffer
  readonly prepare: IlpPrepare
  /** Unique per incoming account while in flight: the Request-Id, or a hash of the packet. */
  readonly packetId: string
  nextHop?: AccountConfig
  outAmount?: string
  outExpiresAt?: Date
}

/** A context after routing and the expiry check: everything needed to reserve and forward. */
export interface RoutedPacket extends PacketContext {
  nextHop: AccountConfig
  outAmount: string
  outExpiresAt: Date
}
