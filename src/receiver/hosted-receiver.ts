import { createHash, randomBytes } from 'node:crypto'
import { StreamServer } from '@interledger/stream-receiver'
import { createReceipt } from 'ilp-protocol-stream/dist/src/util/receipt.js'
import { type IlpPrepare, serializeIlpFulfill, serializeIlpReply } from 'ilp-packet'
import type { AccountConfig, FarmConfig } from '../config/schema.js'
import type { HostedTransport, RoutedPacket } from '../packet/ports.js'
import type { PaymentHistory } from '../payments/history.js'
import type { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'
import { hostedReceiverAddress, isHostedReceiverDestination } from '../util/address.js'

/** An SPSP answer (RFC 9): where to send, and the key the packets are encrypted and conditioned with. */
export interface SpspDetails {
  destination_account: string
  shared_secret: string
  receipts_enabled: boolean
}

/** What a sender's verifier gives to get STREAM receipts (RFC 39): a 16-byte nonce and a 32-byte secret. */
export interface ReceiptSetup {
  nonce: Buffer
  secret: Buffer
}

/** The receipt setup a connection was made with, from the payment tag spsp() gave it. */
function receiptSetupOf(tag: string | undefined): ReceiptSetup | undefined {
  const parts = tag?.split('.')
  if (parts?.length !== 3 || parts[0] !== 'r') return undefined
  return { nonce: Buffer.from(parts[1]!, 'base64url'), secret: Buffer.from(parts[2]!, 'base64url') }
}

/** Receivers kept at hand; each is two HMAC keys, made again on demand past this. */
const MAX_SERVERS = 10_000

/**
 * The farm's own STREAM receiver for its child accounts: a packet addressed
 * under `<ilpAddress>.<id>.~stream.` is answered here, and fulfilled like a
 * packet to any other next hop, so the ledger credits the account while its
 * user is offline. Stateless (@interledger/stream-receiver): a connection's
 * keys are derived from one farm-wide secret and its address, so any worker
 * on any host answers any packet, and nothing per connection is kept.
 */
export class HostedReceiver implements HostedTransport {
  private readonly servers = new Map<string, StreamServer>()
  /** The receipt each fulfilled packet carried and its connection's name, until the history has it (the packet's own flow, in this worker). */
  private readonly receipts = new WeakMap<RoutedPacket, { receipt: string; total: string; connection: string }>()

  constructor(
    private readonly ilpAddress: string,
    private readonly secret: Buffer,
    /** Where each credited packet is added to its account's incoming payment; absent: no history. */
    private readonly history?: PaymentHistory,
    private readonly log?: { warn(obj: object, msg: string): void },
  ) {}

  /** The receiver with the secret of `config.receiver`, else the farm's own, made once and shared through Redis. */
  static async open(
    redis: RedisClient,
    keys: Keys,
    config: Pick<FarmConfig, 'ilpAddress' | 'receiver'>,
    history?: PaymentHistory,
    log?: { warn(obj: object, msg: string): void },
  ): Promise<HostedReceiver> {
    if (config.receiver.secret !== undefined) return new HostedReceiver(config.ilpAddress, Buffer.from(config.receiver.secret, 'hex'), history, log)
    // the first SET NX wins: every worker of every host then reads the same secret
    await redis.set(keys.receiverSecret, randomBytes(32).toString('hex'), 'NX')
    const stored = await redis.get(keys.receiverSecret)
    if (stored === null) throw new Error('the receiver secret vanished from Redis')
    return new HostedReceiver(config.ilpAddress, Buffer.from(stored, 'hex'), history, log)
  }

  /** The account's receiving address: every connection's address starts with it. */
  address(accountId: string): string {
    return hostedReceiverAddress(this.ilpAddress, accountId)
  }

  receives(packet: RoutedPacket): boolean {
    return isHostedReceiverDestination(packet.prepare.destination, this.ilpAddress, packet.nextHop.id)
  }

  /**
   * New connection details for a payment to `account`, in its asset (told to
   * the sender over STREAM). With a receipt nonce and secret (RFC 39, from
   * the SPSP request), every fulfilled packet carries a receipt of the total
   * received on the connection, signed with that secret; the nonce and secret
   * ride in the connection's own (encrypted) address, as all its state does.
   */
  spsp(account: AccountConfig, receipts?: ReceiptSetup): SpspDetails {
    const { ilpAddress, sharedSecret } = this.server(account.id).generateCredentials({
      asset: { code: account.assetCode, scale: account.assetScale },
      ...(receipts ? { receiptSetup: receipts, paymentTag: `r.${receipts.nonce.toString('base64url')}.${receipts.secret.toString('base64url')}` } : {}),
    })
    return { destination_account: ilpAddress, shared_secret: sharedSecret.toString('base64'), receipts_enabled: receipts !== undefined }
  }

  /**
   * Answers the packet as the account's receiver, for the amount the account
   * gets (`outAmount`): a Fulfill when its STREAM data are authentic and the
   * amount meets the sender's minimum, else the receiver's Reject (F99 with
   * STREAM data for a sender's exchange-rate probe, F06 for a connection of
   * another secret, F05 for an unfulfillable condition).
   */
  async forward(packet: RoutedPacket): Promise<Buffer> {
    const prepare: IlpPrepare = { ...packet.prepare, amount: packet.outAmount, expiresAt: packet.outExpiresAt }
    const reply = this.server(packet.nextHop.id).createReply(prepare)
    if (!('accept' in reply)) return serializeIlpReply(reply)
    const setup = receiptSetupOf(reply.paymentTag)
    if (setup !== undefined && this.history !== undefined) {
      // the total with this packet: what the connection's history entry has been credited so far, plus it
      const connection = this.connectionOf(packet)
      const before = await this.history.received(packet.nextHop.id, connection)
      const total = (BigInt(before) + BigInt(packet.outAmount)).toString()
      reply.setTotalReceived(total)
      this.receipts.set(packet, { receipt: createReceipt({ ...setup, totalReceived: total, streamId: 1 }).toString('base64'), total, connection })
    }
    return serializeIlpFulfill(reply.accept())
  }

  /** The history's name of the packet's STREAM connection: a digest of its address (the same on every worker). */
  private connectionOf(packet: RoutedPacket): string {
    return createHash('sha256').update(packet.prepare.destination.slice(this.address(packet.nextHop.id).length + 1)).digest('base64url').slice(0, 22)
  }

  /**
   * Adds the credited packet to the account's incoming payment: one per
   * STREAM connection, named by its address (the same on every worker).
   */
  credited(packet: RoutedPacket): void {
    if (this.history === undefined) return
    const from = packet.from
    const now = new Date().toISOString()
    const receipt = this.receipts.get(packet)
    this.receipts.delete(packet)
    this.history
      .credit(packet.nextHop.id, receipt?.connection ?? this.connectionOf(packet), packet.outAmount, receipt, {
        direction: 'incoming',
        state: 'received',
        counterpart: from.relation === 'child' ? `${this.ilpAddress}.${from.id}` : from.id,
        assetCode: packet.nextHop.assetCode,
        assetScale: packet.nextHop.assetScale,
        startedAt: now,
      })
      .catch((err: unknown) => this.log?.warn({ err, accountId: packet.nextHop.id }, 'could not add a received packet to the payment history'))
  }

  private server(accountId: string): StreamServer {
    let server = this.servers.get(accountId)
    if (server === undefined) {
      if (this.servers.size >= MAX_SERVERS) this.servers.clear()
      server = new StreamServer({ serverSecret: this.secret, serverAddress: this.address(accountId) })
      this.servers.set(accountId, server)
    }
    return server
  }
}
