/**
 * What the packet core works on (a packet as it arrived, then routed) and
 * what it needs from the rest of the worker, declared here so that the steps
 * depend on these interfaces and never on the parts that implement them:
 *
 * - NextHopTransport: `OutgoingClient` (src/peers/outgoing.ts, sync
 *   ILP-over-HTTP), `AsyncReplies` (src/async/replies.ts, async
 *   ILP-over-HTTP), `UserRpc` (src/rpc/user-rpc.ts, a user's own
 *   JSON-RPC URL) and `HostedReceiver` (src/receiver/, the farm's own
 *   STREAM receiver for an account); the forward step picks one per packet.
 * - PacketLedger: `Ledger` (src/store/ledger.ts).
 * - RouteChooser: `AddressMapper` (src/routing/address-mapper.ts).
 * - RequestIdClaims: `RequestIds` (src/store/request-ids.ts).
 * - CcpHandler: `CcpResponder` (src/routing/ccp-responder.ts).
 * - SettlementCheck: `Settlements`; PacketObserver: `FarmMetrics`.
 *
 * src/farm/worker.ts wires the implementations.
 */
import type { IlpPrepare } from 'ilp-packet'
import type { AccountConfig } from '../config/schema.js'
import type { RouteChoice } from '../routing/address-mapper.js'
import type { Candidate } from '../routing/routing-table.js'
import type { HopOutcome } from '../routing/stats.js'
import type { FulfillOptions, PrepareOutcome, Reservation, ResolveOutcome } from '../store/ledger.js'

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

/**
 * Why a packet did not get an answer from the next hop: `timeout` (R00), `unavailable` for an HTTP 5xx
 * (T00: the hop says it cannot serve now), `unreachable` for anything else (T01). The message names what
 * happened (addresses, the hop's own error text): for the log, never for the packet.
 */
export class OutgoingError extends Error {
  constructor(
    readonly reason: 'timeout' | 'unavailable' | 'unreachable',
    message: string,
  ) {
    super(message)
    this.name = 'OutgoingError'
  }
}

/** One way of reaching a next hop. */
export interface NextHopTransport {
  /**
   * Sends the prepare of `packet` to `packet.nextHop`, with the farm's amount
   * and expiry (`outAmount`, `outExpiresAt`; `bytes` is that prepare
   * serialized), and resolves with the next hop's answer as ILP bytes, not yet
   * checked. No answer by `outExpiresAt`, or an answer that is not a packet:
   * rejects with OutgoingError.
   */
  forward(packet: RoutedPacket, bytes: Buffer): Promise<Buffer>
}

/** The transports of a worker: the forward step picks one per next hop. */
export interface NextHopTransports {
  /** ILP-over-HTTP, the answer in the response. */
  readonly sync: NextHopTransport
  /** ILP-over-HTTP to a next hop with `outgoing.mode: async`: 202, then the answer by callback. */
  readonly async: NextHopTransport
  /** A user's own JSON-RPC URL (ilp_setRpcUrl); absent: never used. */
  readonly userRpc?: NextHopTransport
  /** The farm's own receiver for its accounts (packets under an account's hosted address); absent: never used. */
  readonly hosted?: HostedTransport
}

/** A next hop the farm answers for itself: the packets it takes are addressed to it. */
export interface HostedTransport extends NextHopTransport {
  /** Whether `packet` is addressed to the farm-hosted receiver of its next hop. */
  receives(packet: RoutedPacket): boolean
  /** The packet was fulfilled and its next hop's credit decided (off the packet's path: never awaited). */
  credited(packet: RoutedPacket): void
}

/** The balances: a reservation before the packet goes out, its fulfill or refund after. */
export interface PacketLedger {
  prepare(reservation: Reservation): Promise<PrepareOutcome>
  fulfill(incomingAccount: string, packetId: string, outgoingAccount: string, opts?: FulfillOptions): Promise<ResolveOutcome>
  reject(incomingAccount: string, packetId: string, outgoingAccount: string): Promise<ResolveOutcome>
  /** Set under `durability: replica`: a write is confirmed only once a replica has it. */
  readonly durabilityTimeoutMs: number | undefined
}

/** Picks the next hop for a destination, and learns from each outcome. */
export interface RouteChooser {
  /** Rejects (IlpRejection F02) when there is no next hop other than the sender. */
  choose(destination: string, fromId: string, amount: string): RouteChoice | Promise<RouteChoice>
  /** Counts an answer against the candidate it came through (in memory). */
  record(candidate: Candidate, outcome: HopOutcome): void
}

/** The replay guard of incoming Request-Ids. */
export interface RequestIdClaims {
  /**
   * True if the id was free and is now claimed (keeping `value`: the
   * Callback-Url of an async packet); false if it was seen before. Throws
   * TooManyRequestIds over the account's limit; rejects if the store fails.
   */
  claim(accountId: string, requestId: string, expiresAtMs: number, value: string): Promise<boolean>
}

/** Answers route announcements (CCP): peer.route.control and peer.route.update. */
export interface CcpHandler {
  handleControl(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer>
  handleUpdate(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer>
}

/** Settlement requests: checked after a fulfill credits an account with a settleThreshold. */
export interface SettlementCheck {
  afterCredit(account: AccountConfig): Promise<unknown>
}

/** Told of each packet answered, whichever way it ended. */
export interface PacketObserver {
  packetDone(from: AccountConfig, raw: Buffer, answer: Buffer, startedAt: number): void
}
