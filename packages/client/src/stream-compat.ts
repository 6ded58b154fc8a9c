import { Connection, DataAndMoneyStream } from 'ilp-protocol-stream'
import { ConnectionAssetDetailsFrame, type Packet } from 'ilp-protocol-stream/dist/src/packet.js'

/**
 * ilp-protocol-stream 2.7.1 (the latest release) does not run on Node >= 18:
 * DataAndMoneyStream's constructor assigns `this.closed = false`, but since
 * Node 18 `closed` is a getter-only property of Readable, so creating any
 * stream throws "Cannot set property closed of #<Readable> which has only a
 * getter" (interledgerjs/interledgerjs#284). Upstream fixed it in #423 by
 * giving DataAndMoneyStream its own `closed` accessor, released only in the
 * 2.7.2-alpha prereleases. This does the same: a plain read/write flag on the
 * subclass prototype, shadowing Readable's getter (Node's stream internals
 * use _readableState.closed, not the property). Idempotent.
 */
export function fixStreamClosedProperty(): void {
  const proto: object = DataAndMoneyStream.prototype
  if (Object.prototype.hasOwnProperty.call(proto, 'closed')) return
  const flags = new WeakMap<object, boolean>()
  Object.defineProperty(proto, 'closed', {
    configurable: true,
    get(this: object): boolean {
      return flags.get(this) ?? false
    },
    set(this: object, value: boolean) {
      flags.set(this, value)
    },
  })
}

fixStreamClosedProperty()

/**
 * A send-only STREAM sender: a connection whose plugin says `sendOnly`
 * announces its asset but never its address (no ConnectionNewAddress frame,
 * which STREAM leaves optional for a sender that does not receive, as
 * @interledger/pay does). An ilp-protocol-stream receiver that learned the
 * address would probe the exchange rate back to it and close the connection
 * when that fails; without it the receiver only answers what arrives, so a
 * payer needs no reachable RPC URL of its own. Idempotent.
 */
export function allowSendOnlyConnections(): void {
  const proto = Connection.prototype as unknown as {
    maybePushAccountFrames: ((this: SendOnlyView, packet: Packet) => void) & { sendOnlyAware?: true }
  }
  if (proto.maybePushAccountFrames.sendOnlyAware) return
  const original = proto.maybePushAccountFrames
  const patched = function (this: SendOnlyView, packet: Packet): void {
    if (this.plugin?.sendOnly !== true) return original.call(this, packet)
    if (!this.remoteKnowsOurAccount) packet.frames.push(new ConnectionAssetDetailsFrame(this._sourceAssetCode, this._sourceAssetScale))
  }
  proto.maybePushAccountFrames = Object.assign(patched, { sendOnlyAware: true as const })
}

/** The private fields of ilp-protocol-stream 2.7's Connection this reads. */
interface SendOnlyView {
  plugin?: { sendOnly?: boolean }
  remoteKnowsOurAccount: boolean
  _sourceAssetCode: string
  _sourceAssetScale: number
}

allowSendOnlyConnections()
