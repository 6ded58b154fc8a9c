/**
 * The leader's sending side of route announcements (CCP), like
 * ilp-connector's `route-broadcaster` and `ccp-sender`: it keeps the table
 * the farm advertises (id, epochs and per-prefix entries in Redis, re-computed
 * from the routing table after it changes), applies the route controls any
 * worker stored, and sends each `sendRoutes` peer the updates it lacks.
 */
import { createHash, createHmac } from 'node:crypto'
import { serializeIlpPrepare } from 'ilp-packet'
import { type CcpRoute, constructCcpRouteUpdateRequest, Mode } from 'ilp-protocol-ccp'
import type { Logger } from 'pino'
import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import type { AddressMapper } from './address-mapper.js'
import { pinnedWith, retryDelay, sendCcpMessage, tickStep } from './ccp-message.js'
import type { AdvertisedEntry, AdvertisedRoute, CcpStore, TableMeta } from './ccp-store.js'

/** Hold-down time announced = this × the broadcast interval: a peer keeps our routes through one lost broadcast and more. */
export const HOLD_DOWN_FACTOR = 2.5
/** Route update data budget per message (an ILP Prepare's data is at most 32767 bytes). */
const MAX_UPDATE_BYTES = 30_000

export interface RouteBroadcasterOptions {
  ownAddress: string
  /** Parents and peers are pinned: every worker has them at hand. */
  accounts: Pick<AccountRegistry, 'peek' | 'pinnedAccounts'>
  mapper: AddressMapper
  store: CcpStore
  outgoing: OutgoingClient
  /** The worker's boot id: the table's writes name it, so that a leader that lost the lease cannot write. */
  bootId: string
  /** routing.broadcastIntervalMs: a peer up to date still gets an update this often. */
  intervalMs: number
  /** The leader's tick: changes are gathered for a quiet moment of at most one tick. */
  tickMs: number
  log: Logger
}

interface SenderState {
  mode: Mode
  /** The epoch the peer has (the next update starts from it), for table `tableId`. */
  epoch: number
  lastSentAt: number
  nextTryAt: number
  backoffMs: number
  /** Nonce of the last route control applied. */
  seenControl?: string
}

export class RouteBroadcaster {
  private readonly holdDownMs: number
  private readonly globalPrefix: string
  private readonly quietMs: number
  private readonly maxDelayMs: number
  private meta: TableMeta | undefined
  private adv = new Map<string, AdvertisedEntry>()
  private dirty = true
  private firstDirtyAt = 0
  private lastChangeAt = 0
  private readonly senders = new Map<string, SenderState>()
  private unsubscribe: (() => void) | undefined

  constructor(private readonly opts: RouteBroadcasterOptions) {
    this.holdDownMs = Math.min(Math.round(opts.intervalMs * HOLD_DOWN_FACTOR), 0xffffffff)
    this.globalPrefix = opts.ownAddress.split('.')[0]!
    this.quietMs = Math.min(200, opts.tickMs)
    this.maxDelayMs = Math.min(1000, opts.intervalMs)
  }

  /** The table as the leader last wrote it. */
  get table(): { meta: TableMeta | undefined; advertised: ReadonlyMap<string, AdvertisedEntry> } {
    return { meta: this.meta, advertised: this.adv }
  }

  /** The lease was taken: the table as Redis has it, every peer from the start, the table re-computed now. */
  async begin(): Promise<void> {
    this.meta = await this.opts.store.ensureTable()
    this.adv = await this.opts.store.loadAdvertised()
    this.senders.clear()
    this.unsubscribe = this.opts.mapper.onTableChange(() => this.markDirty())
    this.dirty = true
    this.opts.log.info({ tableId: this.meta.id, epoch: this.meta.epoch }, 'route announcements started')
    await this.recompute()
  }

  /** The lease is gone: routing table changes are no longer followed. */
  end(): void {
    this.unsubscribe?.()
    this.unsubscribe = undefined
  }

  /** One leader tick: re-compute the advertised table (debounced), take route controls, send what is due. */
  async tick(now: number): Promise<void> {
    if (!this.meta) return
    const log = this.opts.log
    if (this.dirty && (now - this.lastChangeAt >= this.quietMs || now - this.firstDirtyAt >= this.maxDelayMs)) {
      await tickStep(log, 're-compute the advertised routes', () => this.recompute())
    }
    await tickStep(log, 'read route controls', () => this.applyControls())
    await Promise.all(
      this.sendRoutesAccounts().map((account) => tickStep(log, `announce routes to ${account.id}`, () => this.maybeSendUpdate(account, Date.now()))),
    )
  }

  private markDirty(): void {
    const now = Date.now()
    if (!this.dirty) this.firstDirtyAt = now
    this.dirty = true
    this.lastChangeAt = now
  }

  private sendRoutesAccounts(): AccountConfig[] {
    return pinnedWith(this.opts.accounts.pinnedAccounts(), 'sendRoutes')
  }

  private auth(prefix: string): string {
    return createHmac('sha256', this.meta!.secret).update(prefix).digest('hex')
  }

  /**
   * What the farm advertises, prefix → its best routes: its own address
   * (which covers its children), and every prefix of the routing table that
   * is not under it, static (path = [farm]) or learned (path = [farm,
   * ...learned path]), like ilp-connector. A bare scheme (default route) is
   * not advertised.
   */
  desiredRoutes(): Map<string, AdvertisedRoute[]> {
    const own = this.opts.ownAddress
    const out = new Map<string, AdvertisedRoute[]>()
    out.set(own, [{ hop: '', path: [own], auth: this.auth(own) }])
    for (const entry of this.opts.mapper.table.entries()) {
      const p = entry.prefix
      if (p === own || p.startsWith(`${own}.`) || !p.startsWith(`${this.globalPrefix}.`)) continue
      const routes: AdvertisedRoute[] = []
      for (const c of entry.candidates) {
        // a static route's account has an outgoing URL (checked when added); one not at hand is taken as it was checked
        const known = this.opts.accounts.peek(c.accountId)
        if (known !== undefined && known.account.outgoing === undefined) continue
        if (c.info.source === 'learned') {
          const path = c.info.path ?? []
          if (path.includes(own)) continue
          const auth =
            c.info.auth !== undefined && /^[0-9a-f]{64}$/.test(c.info.auth)
              ? createHash('sha256').update(Buffer.from(c.info.auth, 'hex')).digest('hex')
              : this.auth(p)
          routes.push({ hop: c.accountId, path: [own, ...path], auth })
        } else {
          routes.push({ hop: c.accountId, path: [own], auth: this.auth(p) })
        }
      }
      if (routes.length === 0) continue
      routes.sort((a, b) => a.path.length - b.path.length || (a.hop < b.hop ? -1 : a.hop > b.hop ? 1 : 0))
      out.set(p, routes.slice(0, 2))
    }
    return out
  }

  /** Compares the desired table with the advertised one; each changed prefix gets the next epoch. */
  async recompute(): Promise<void> {
    if (!this.meta) return
    this.dirty = false
    const desired = this.desiredRoutes()
    const changes: Array<[string, AdvertisedEntry]> = []
    let epoch = this.meta.epoch
    for (const [prefix, routes] of desired) {
      const current = this.adv.get(prefix)
      if (current && JSON.stringify(current.r) === JSON.stringify(routes)) continue
      changes.push([prefix, { e: ++epoch, r: routes }])
    }
    for (const [prefix, current] of this.adv) {
      if (current.r.length > 0 && !desired.has(prefix)) changes.push([prefix, { e: ++epoch, r: [] }])
    }
    if (changes.length === 0) return
    const written = await this.opts.store.writeAdvertised(this.opts.bootId, this.meta.epoch, epoch, changes)
    if (!written) {
      // another leader moved the table meanwhile (or we lost the lease): start from what Redis has
      this.meta = await this.opts.store.ensureTable()
      this.adv = await this.opts.store.loadAdvertised()
      this.markDirty()
      return
    }
    for (const [prefix, entry] of changes) this.adv.set(prefix, entry)
    this.meta = { ...this.meta, epoch }
    this.opts.log.debug({ epoch, changed: changes.length }, 'advertised routes changed')
  }

  private sender(id: string): SenderState {
    let s = this.senders.get(id)
    if (!s) {
      // sendRoutes is the operator's consent: send from the start; a peer that does not want them says IDLE
      s = { mode: Mode.MODE_SYNC, epoch: 0, lastSentAt: 0, nextTryAt: 0, backoffMs: 0 }
      this.senders.set(id, s)
    }
    return s
  }

  /** Applies each new route control (any worker stored it): mode, and the epoch the peer has of our table (another table id: 0). */
  private async applyControls(): Promise<void> {
    const controls = await this.opts.store.loadControls()
    for (const account of this.sendRoutesAccounts()) {
      const c = controls.get(account.id)
      const s = this.sender(account.id)
      if (!c || c.n === s.seenControl) continue
      s.seenControl = c.n
      s.mode = c.mode === Mode.MODE_IDLE ? Mode.MODE_IDLE : Mode.MODE_SYNC
      s.epoch = c.tableId === this.meta!.id ? Math.min(c.epoch, this.meta!.epoch) : 0
      s.lastSentAt = 0
      s.nextTryAt = 0
      s.backoffMs = 0
    }
  }

  private async maybeSendUpdate(account: AccountConfig, now: number): Promise<void> {
    const s = this.sender(account.id)
    const meta = this.meta!
    if (s.mode !== Mode.MODE_SYNC || now < s.nextTryAt) return
    if (s.epoch > meta.epoch) s.epoch = 0
    if (s.epoch >= meta.epoch && now - s.lastSentAt < this.opts.intervalMs) return
    const update = this.buildUpdate(account, s.epoch)
    try {
      await sendCcpMessage(this.opts.outgoing, account, serializeIlpPrepare(constructCcpRouteUpdateRequest(update)))
    } catch (err) {
      s.backoffMs = retryDelay(s.backoffMs, this.opts.intervalMs)
      s.nextTryAt = Date.now() + s.backoffMs
      this.opts.log.debug({ err, account: account.id }, 'route update not delivered; retrying')
      return
    }
    s.epoch = update.toEpochIndex
    s.lastSentAt = now
    s.backoffMs = 0
    s.nextTryAt = 0
  }

  /**
   * The update for one peer from epoch `from`: every advertised prefix changed
   * since, in epoch order, up to the data budget. A prefix whose best route
   * leads through the peer itself gets the second best, or is withdrawn (never
   * advertised back); towards a parent, routes through peers and parents are
   * withheld (like ilp-connector).
   */
  buildUpdate(account: AccountConfig, from: number): Parameters<typeof constructCcpRouteUpdateRequest>[0] {
    const meta = this.meta!
    const changed = [...this.adv.entries()].filter(([, e]) => e.e > from).sort((a, b) => a[1].e - b[1].e)
    const newRoutes: CcpRoute[] = []
    const withdrawnRoutes: string[] = []
    let bytes = 0
    let to = meta.epoch
    let lastIncluded = from
    for (const [prefix, entry] of changed) {
      const route = entry.r.find((r) => r.hop !== account.id && this.mayAnnounce(account, r))
      const size = route ? prefix.length + route.path.reduce((n, p) => n + p.length + 2, 0) + 40 : prefix.length + 2
      if (bytes + size > MAX_UPDATE_BYTES && bytes > 0) {
        to = lastIncluded
        break
      }
      bytes += size
      lastIncluded = entry.e
      if (route) newRoutes.push({ prefix, path: [...route.path], auth: Buffer.from(route.auth, 'hex'), props: [] })
      else withdrawnRoutes.push(prefix)
    }
    return {
      routingTableId: meta.id,
      currentEpochIndex: meta.epoch,
      fromEpochIndex: from,
      toEpochIndex: to,
      holdDownTime: this.holdDownMs,
      speaker: this.opts.ownAddress,
      newRoutes,
      withdrawnRoutes,
    }
  }

  private mayAnnounce(to: AccountConfig, route: AdvertisedRoute): boolean {
    if (to.relation !== 'parent' || route.hop === '') return true
    const relation = this.opts.accounts.peek(route.hop)?.account.relation
    return relation !== 'peer' && relation !== 'parent'
  }
}
