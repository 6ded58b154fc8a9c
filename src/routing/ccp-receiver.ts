/**
 * The leader's receiving side of route announcements (CCP), like
 * ilp-connector's `ccp-receiver`: it expires the routes learned from a peer
 * that went silent beyond its hold-down time, and asks each `receiveRoutes`
 * peer for its routes (route control) when the farm lacks them. The updates
 * themselves arrive at any worker (`ccp-responder.ts`).
 */
import { serializeIlpPrepare } from 'ilp-packet'
import { constructCcpRouteControlRequest, Mode } from 'ilp-protocol-ccp'
import type { Logger } from 'pino'
import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import type { AddressMapper } from './address-mapper.js'
import { pinnedWith, retryDelay, sendCcpMessage } from './ccp-message.js'
import type { CcpStore } from './ccp-store.js'

/** The routing table id a route control names when the farm has none of the peer's tables yet. */
export const ZERO_TABLE_ID = '00000000-0000-0000-0000-000000000000'

export interface RouteReceiverOptions {
  accounts: Pick<AccountRegistry, 'pinnedAccounts'>
  mapper: AddressMapper
  store: CcpStore
  outgoing: OutgoingClient
  /** routing.broadcastIntervalMs: bounds the retry delay and how often a silent peer is asked again. */
  intervalMs: number
  log: Logger
}

interface ReceiverState {
  sentOnce: boolean
  nextTryAt: number
  backoffMs: number
}

export class RouteReceiver {
  private readonly receivers = new Map<string, ReceiverState>()

  constructor(private readonly opts: RouteReceiverOptions) {}

  /** The lease was taken: every receiveRoutes peer is asked once more. */
  begin(): void {
    this.receivers.clear()
  }

  /**
   * Receiving side, every sweep: expires learned candidates whose peer sent
   * nothing within its hold-down time, and sends route control (SYNC, the
   * table id and epoch we have) to receiveRoutes peers: once per lease, after
   * an update with a gap, and again when a peer has gone silent.
   */
  async maintain(now: number): Promise<void> {
    const states = await this.opts.store.loadReceiveStates()
    const expired: Array<[string, string]> = []
    for (const entry of this.opts.mapper.table.entries()) {
      for (const c of entry.candidates) {
        if (c.info.source !== 'learned') continue
        if ((states.get(c.accountId)?.expiresAtMs ?? 0) > now || (c.info.expiresAtMs ?? 0) > now) continue
        expired.push([entry.prefix, c.accountId])
      }
    }
    if (expired.length > 0) {
      const removed = await this.opts.store.expire(expired, now)
      if (removed > 0) this.opts.log.info({ removed }, 'learned routes expired')
    }
    await Promise.all(
      pinnedWith(this.opts.accounts.pinnedAccounts(), 'receiveRoutes').map(async (account: AccountConfig) => {
        let r = this.receivers.get(account.id)
        if (!r) this.receivers.set(account.id, (r = { sentOnce: false, nextTryAt: 0, backoffMs: 0 }))
        const st = states.get(account.id)
        const need = !r.sentOnce || st?.needsControl === true || st === undefined || st.expiresAtMs <= now
        if (!need || now < r.nextTryAt) return
        const control = constructCcpRouteControlRequest({
          mode: Mode.MODE_SYNC,
          lastKnownRoutingTableId: st?.tableId || ZERO_TABLE_ID,
          lastKnownEpoch: st?.epoch ?? 0,
          features: [],
        })
        try {
          await sendCcpMessage(this.opts.outgoing, account, serializeIlpPrepare(control))
        } catch (err) {
          r.backoffMs = retryDelay(r.backoffMs, this.opts.intervalMs)
          r.nextTryAt = Date.now() + r.backoffMs
          this.opts.log.debug({ err, account: account.id }, 'route control not delivered; retrying')
          return
        }
        r.sentOnce = true
        r.backoffMs = 0
        // a peer that stays silent after this is asked again, but not more often than this
        r.nextTryAt = Date.now() + Math.max(2 * this.opts.intervalMs, 1000)
        if (st?.needsControl === true) await this.opts.store.controlSent(account.id)
      }),
    )
  }
}
