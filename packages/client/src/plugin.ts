import { EventEmitter } from 'node:events'
import { deserializeIlpPrepare, deserializeIlpReject, type IlpPrepare, type IlpReject, serializeIlpPrepare, Type } from 'ilp-packet'
import { type IldcpResponse, serve as serveIldcp } from 'ilp-protocol-ildcp'
import { localReject } from '@ilp-farm/protocol'
import { FarmRpcError } from './rpc.js'

/** What an ILP plugin (v2) calls with each incoming Prepare: resolves with the serialized Fulfill or Reject. */
export type DataHandler = (data: Buffer) => Promise<Buffer>

/** The part of FarmRpc the plugin needs to send. */
export interface PrepareSender {
  sendPrepare(prepare: IlpPrepare): Promise<Buffer>
}

export interface RpcPluginOptions {
  /** Sends prepares through the farm (`ilp_sendPrepare`). */
  sender: PrepareSender
  /**
   * When set, ILDCP (`peer.config`) is answered here with this, not by the
   * farm: each STREAM endpoint of one account then gets an address of its
   * own under the account's (`<account address>.<segment>`), which the farm
   * routes to the account like the account's own address.
   */
  ildcp?: { response: IldcpResponse; serverAddress: string }
  /**
   * A STREAM connection over this plugin never tells the other side its
   * address (stream-compat.ts), so the receiver has nowhere to send packets
   * back and the payer need not be reachable: what a payer that must leave
   * the account's RPC URL alone needs.
   */
  sendOnly?: boolean
  /** Called with every Reject a sent Prepare ends in (the farm's, a receiver's, or made here when the farm is unreachable). */
  onReject?: (reject: IlpReject) => void
}

const ILDCP_DESTINATION = 'peer.config'

/**
 * An ILP plugin (the v2 interface ilp-protocol-stream takes) whose link to
 * the farm is JSON-RPC: `sendData` sends the Prepare with `ilp_sendPrepare`,
 * and prepares for it come in through `receive` (from the local endpoint's
 * `ilp_receivePrepare` calls, see FarmClient). Money moves on the farm's
 * balances, so there is nothing to settle here: `sendMoney` is a no-op.
 */
export class RpcPlugin extends EventEmitter {
  private connected = false
  private dataHandler: DataHandler | undefined

  constructor(private readonly opts: RpcPluginOptions) {
    super()
  }

  /** Our address, for rejects made here. */
  private get address(): string {
    return this.opts.ildcp?.response.clientAddress ?? ''
  }

  async connect(): Promise<void> {
    if (this.connected) return
    this.connected = true
    this.emit('connect')
  }

  async disconnect(): Promise<void> {
    if (!this.connected) return
    this.connected = false
    this.emit('disconnect')
  }

  isConnected(): boolean {
    return this.connected
  }

  get sendOnly(): boolean {
    return this.opts.sendOnly === true
  }

  /**
   * Sends a serialized Prepare, resolves with the serialized Fulfill or Reject.
   * Disconnected: F00. A farm that cannot be reached gives a T01 Reject, a farm that refuses the
   * call (e.g. invalid params) an F00: a sender such as STREAM then retries or
   * gives up as it would for any Reject, instead of failing on an exception.
   */
  async sendData(data: Buffer): Promise<Buffer> {
    const prepare = deserializeIlpPrepare(data)
    // Final, so a sender gives up at once (FarmClient.pay disconnects its plugin at the payment's deadline).
    if (!this.connected) return localReject('F00', this.address, 'the plugin is disconnected')
    const ildcp = this.opts.ildcp
    if (prepare.destination === ILDCP_DESTINATION && ildcp !== undefined) {
      return serveIldcp({ requestPacket: data, serverAddress: ildcp.serverAddress, handler: async () => ildcp.response })
    }
    const reply = await this.opts.sender.sendPrepare(prepare).catch((err: unknown) => {
      const message = (err as Error).message.slice(0, 200)
      return err instanceof FarmRpcError ? localReject('F00', this.address, message) : localReject('T01', this.address, message)
    })
    if (this.opts.onReject !== undefined && reply[0] === Type.TYPE_ILP_REJECT) this.opts.onReject(deserializeIlpReject(reply))
    return reply
  }

  /** An incoming serialized Prepare for this plugin; no handler registered: F02. */
  async receive(data: Buffer): Promise<Buffer> {
    const handler = this.dataHandler
    if (handler === undefined || !this.connected) return localReject('F02', this.address, 'no receiver is listening')
    return handler(data)
  }

  registerDataHandler(handler: DataHandler): void {
    if (this.dataHandler) throw new Error('a data handler is already registered')
    this.dataHandler = handler
  }

  deregisterDataHandler(): void {
    this.dataHandler = undefined
  }

  // Settlement is the farm's balance: there is no money to send or receive on this link.
  async sendMoney(_amount: string): Promise<void> {}
  registerMoneyHandler(_handler: (amount: string) => Promise<void>): void {}
  deregisterMoneyHandler(): void {}
}

/**
 * Hands each Prepare arriving for the account to the plugin that owns its
 * destination: the first segment after the account's address names a
 * plugin attached under it (a payment's connection); anything else goes to
 * the default plugin (the STREAM server, whose addresses are
 * `<account address>.<token>`).
 */
export class IncomingRouter {
  private readonly bySegment = new Map<string, RpcPlugin>()
  private fallback: RpcPlugin | undefined

  constructor(private readonly accountAddress: string) {}

  attach(segment: string, plugin: RpcPlugin): void {
    this.bySegment.set(segment, plugin)
  }

  detach(segment: string): void {
    this.bySegment.delete(segment)
  }

  setDefault(plugin: RpcPlugin | undefined): void {
    this.fallback = plugin
  }

  async handle(prepare: IlpPrepare): Promise<Buffer> {
    const { destination } = prepare
    const base = this.accountAddress
    if (destination !== base && !destination.startsWith(`${base}.`)) {
      return localReject('F02', base, `${destination} is not an address of ${base}`)
    }
    const segment = destination.slice(base.length + 1).split('.')[0] ?? ''
    const plugin = this.bySegment.get(segment) ?? this.fallback
    if (plugin === undefined) return localReject('F02', base, 'no receiver is listening')
    return plugin.receive(serializeIlpPrepare(prepare))
  }
}
