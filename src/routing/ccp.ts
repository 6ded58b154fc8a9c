import { createHash, createHmac } from 'node:crypto'
import { deserializeIlpReject, type IlpPrepare, type IlpReject, serializeIlpPrepare, Type } from 'ilp-packet'
import {
  type CcpRoute,
  constructCcpRouteControlRequest,
  constructCcpRouteUpdateRequest,
  deserializeCcpResponse,
  extractCcpRouteControlRequest,
  extractCcpRouteUpdateRequest,
  Mode,
  serializeCcpResponse,
} from 'ilp-protocol-ccp'
import type { Logger } from 'pino'
import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig, FarmConfig } from '../config/schema.js'
import { Repeater } from '../farm/repeat.js'
import type { OutgoingClient } from '../peers/outgoing.js'
import { IlpRejection } from '../packet/reject.js'
import { isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import type { AddressMapper } from './address-mapper.js'
import { type AdvertisedEntry, type AdvertisedRoute, CcpStore, type LearnedRoute, type TableMeta } from './ccp-store.js'
import type { RedisClient } from '../store/redis.js'

export const ZERO_TABLE_ID = '00000000-0000-0000-0000-000000000000'
/** Hold-down time announced = this × the broadcast interval: a peer keeps our routes through one lost broadcast and more. */
export const HOLD_DOWN_FACTOR = 2.5
/** Route update data budget per message (an ILP Prepare's data is at most 32767 bytes). */
const MAX_UPDATE_BYTES = 30_000
/** HTTP deadline of one CCP message. */
const SEND_TIMEOUT_MS = 5_000
/** Shortest retry delay after a failed CCP message (doubling up to the broadcast interval). */
const MIN_RETRY_MS = 200

export interface RouteAnnouncerOptions {
  config: FarmConfig
  /** Parents and peers are pinned: every worker has them at hand. */
  accounts: Pick<AccountRegistry, 'peek' | 'pinnedAccounts'>
  mapper: AddressMapper
  redis: RedisClient
  outgoing: OutgoingClient
  /** The worker's boot id: the leader lease names it. */
  bootId: string
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

interface ReceiverState {
  sentOnce: boolean
  nextTryAt: number
  backoffMs: number
}

/**
 * Route announcements (CCP, the `ilp-protocol-ccp` encodings).
 *
 * Any worker answers `peer.route.control` (stored in Redis for the leader)
 * and `peer.route.update` (learned candidates written into the shared
 * routing table in one script). The leader worker, while it holds the lease,
 * keeps the advertised table (id, epochs, per-prefix entries in Redis),
 * sends updates to `sendRoutes` accounts, asks `receiveRoutes` accounts for
 * theirs (route control), and expires learned routes that were not
 * refreshed. See docs/ARCHITECTURE.md, "Route announcements (CCP)".
 */
export class RouteAnnouncer {
  readonly intervalMs: number
  readonly holdDownMs: number
  readonly store: CcpStore
  private readonly ownAddress: string
  private readonly globalPrefix: string
  private readonly tickMs: number
  private readonly quietMs: number
  private readonly maxDelayMs: number
  private readonly sweepMs: number

  // leader state
  private leading = false
  private repeater: Repeater | undefined
  /** Starts and stops run one after the other (a lease lost and taken again quickly). */
  private transition: Promise<void> = Promise.resolve()
  private wanted = false
  private meta: TableMeta | undefined
  private adv = new Map<string, AdvertisedEntry>()
  private dirty = true
  private firstDirtyAt = 0
  private lastChangeAt = 0
  private lastSweepAt = 0
  private readonly senders = new Map<string, SenderState>()
  private readonly receivers = new Map<string, ReceiverState>()
  private unsubscribe: (() => void) | undefined

  constructor(private readonly opts: RouteAnnouncerOptions) {
    this.intervalMs = opts.config.routing.broadcastIntervalMs
    this.holdDownMs = Math.min(Math.round(this.intervalMs * HOLD_DOWN_FACTOR), 0xffffffff)
    this.store = new CcpStore(opts.redis, opts.config.redis.keyPrefix)
    this.ownAddress = opts.config.ilpAddress
    this.globalPrefix = this.ownAddress.split('.')[0]!
    this.tickMs = Math.max(20, Math.min(250, Math.floor(this.intervalMs / 4)))
    this.quietMs = Math.min(200, this.tickMs)
    this.maxDelayMs = Math.min(1000, this.intervalMs)
    this.sweepMs = Math.min(1000, this.intervalMs)
  }

  get isLeading(): boolean {
    return this.leading
  }

  /** The table as the leader last wrote it (tests, admin). */
  get table(): { meta: TableMeta | undefined; advertised: ReadonlyMap<string, AdvertisedEntry> } {
    return { meta: this.meta, advertised: this.adv }
  }

  // ---- inbound (every worker) ----

  /** `peer.route.control` from an account with sendRoutes: stored for the leader, answered with the peer-protocol fulfillment. */
  async handleControl(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer> {
    let req
    try {
      req = extractCcpRouteControlRequest(prepare)
    } catch (err) {
      throw new IlpRejection('F01', `invalid route control: ${(err as Error).message}`)
    }
    if (req.mode !== Mode.MODE_IDLE && req.mode !== Mode.MODE_SYNC) throw new IlpRejection('F01', `invalid route control mode ${String(req.mode)}`)
    try {
      await this.store.recordControl(from.id, { mode: req.mode, tableId: req.lastKnownRoutingTableId, epoch: req.lastKnownEpoch })
    } catch {
      throw new IlpRejection('T00', 'cannot store the route control now')
    }
    this.opts.log.debug({ account: from.id, mode: req.mode, epoch: req.lastKnownEpoch }, 'route control received')
    return serializeCcpResponse()
  }

  /** `peer.route.update` from an account with receiveRoutes: learned routes into the shared table. */
  async handleUpdate(from: AccountConfig, prepare: IlpPrepare): Promise<Buffer> {
    let req
    try {
      req = extractCcpRouteUpdateRequest(prepare)
    } catch (err) {
      throw new IlpRejection('F01', `invalid route update: ${(err as Error).message}`)
    }
    const routes = this.acceptableRoutes(req.newRoutes)
    const withdrawn = req.withdrawnRoutes.filter((p) => isValidRoutePrefix(p))
    let outcome
    try {
      outcome = await this.store.applyUpdate(
        from.id,
        {
          tableId: req.routingTableId,
          fromEpoch: req.fromEpochIndex,
          toEpoch: req.toEpochIndex,
          holdDownMs: req.holdDownTime,
          routes,
          withdrawn,
        },
        Date.now(),
      )
    } catch {
      throw new IlpRejection('T00', 'cannot store the route update now')
    }
    this.opts.log.debug(
      { account: from.id, from: req.fromEpochIndex, to: req.toEpochIndex, routes: routes.length, dropped: req.newRoutes.length - routes.length, withdrawn: withdrawn.length, ...outcome },
      'route update received',
    )
    return serializeCcpResponse()
  }

  /** Routes the farm takes from a peer: a valid address below a scheme, not ours or under ours, not through us (loop). */
  acceptableRoutes(routes: readonly CcpRoute[]): LearnedRoute[] {
    const own = this.ownAddress
    const out: LearnedRoute[] = []
    for (const r of routes) {
      if (!isValidIlpAddress(r.prefix) || r.prefix.startsWith('peer.') || r.prefix.startsWith('self.')) continue
      if (r.prefix === own || r.prefix.startsWith(`${own}.`)) continue // our own prefix: we know it better
      if (r.path.includes(own)) continue // the route goes through us: a loop
      out.push({ prefix: r.prefix, path: [...r.path], auth: (r.auth.length === 32 ? r.auth : Buffer.alloc(32)).toString('hex') })
    }
    return out
  }

  // ---- leader duty ----

  /** Leader duties start (the lease was taken). */
  start(): void {
    this.wanted = true
    this.transition = this.transition.then(async () => {
      if (!this.wanted || this.leading) return
      try {
        await this.begin()
      } catch (err) {
        this.opts.log.error({ err }, 'route announcements could not start; retrying on the next lease')
        await this.end()
      }
    })
  }

  /** Leader duties stop (lease lost or closing); a message being sent finishes first. */
  async stop(): Promise<void> {
    this.wanted = false
    this.transition = this.transition.then(() => this.end())
    await this.transition
  }

  private async begin(): Promise<void> {
    this.leading = true
    this.meta = await this.store.ensureTable()
    this.adv = await this.store.loadAdvertised()
    this.senders.clear()
    this.receivers.clear()
    this.lastSweepAt = 0
    this.unsubscribe = this.opts.mapper.onTableChange(() => this.markDirty())
    this.dirty = true
    this.opts.log.info({ tableId: this.meta.id, epoch: this.meta.epoch }, 'route announcements started')
    await this.recompute()
    this.repeater = new Repeater(this.tickMs, () => this.tick())
    void this.repeater.start()
  }

  private async end(): Promise<void> {
    this.leading = false
    this.unsubscribe?.()
    this.unsubscribe = undefined
    const repeater = this.repeater
    this.repeater = undefined
    await repeater?.stop()
  }

  private markDirty(): void {
    const now = Date.now()
    if (!this.dirty) this.firstDirtyAt = now
    this.dirty = true
    this.lastChangeAt = now
  }

  /** One leader tick: re-compute the advertised table (debounced), take route controls, send what is due, maintain learned routes. */
  async tick(): Promise<void> {
    if (!this.leading || !this.meta) return
    const now = Date.now()
    if (this.dirty && (now - this.lastChangeAt >= this.quietMs || now - this.firstDirtyAt >= this.maxDelayMs)) {
      await this.step('re-compute the advertised routes', () => this.recompute())
    }
    await this.step('read route controls', () => this.applyControls())
    await Promise.all(
      this.sendRoutesAccounts().map((account) => this.step(`announce routes to ${account.id}`, () => this.maybeSendUpdate(account, Date.now()))),
    )
    if (now - this.lastSweepAt >= this.sweepMs) {
      this.lastSweepAt = now
      await this.step('maintain learned routes', () => this.maintainReceiving(Date.now()))
    }
  }

  private async step(what: string, fn: () => Promise<void>): Promise<void> {
    try {
      await fn()
    } catch (err) {
      this.opts.log.warn({ err }, `could not ${what}`)
    }
  }

  private sendRoutesAccounts(): AccountConfig[] {
    return this.pinned().filter((a) => a.sendRoutes && a.outgoing !== undefined)
  }

  private receiveRoutesAccounts(): AccountConfig[] {
    return this.pinned().filter((a) => a.receiveRoutes && a.outgoing !== undefined)
  }

  private pinned(): AccountConfig[] {
    return [...this.opts.accounts.pinnedAccounts()].map((a) => a.account)
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
    const own = this.ownAddress
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
    const written = await this.store.writeAdvertised(this.opts.bootId, this.meta.epoch, epoch, changes)
    if (!written) {
      // another leader moved the table meanwhile (or we lost the lease): start from what Redis has
      this.meta = await this.store.ensureTable()
      this.adv = await this.store.loadAdvertised()
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
    const controls = await this.store.loadControls()
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
    if (s.epoch >= meta.epoch && now - s.lastSentAt < this.intervalMs) return
    const update = this.buildUpdate(account, s.epoch)
    try {
      await this.send(account, serializeIlpPrepare(constructCcpRouteUpdateRequest(update)))
    } catch (err) {
      s.backoffMs = Math.min(this.intervalMs, Math.max(MIN_RETRY_MS, s.backoffMs * 2))
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
      speaker: this.ownAddress,
      newRoutes,
      withdrawnRoutes,
    }
  }

  private mayAnnounce(to: AccountConfig, route: AdvertisedRoute): boolean {
    if (to.relation !== 'parent' || route.hop === '') return true
    const relation = this.opts.accounts.peek(route.hop)?.account.relation
    return relation !== 'peer' && relation !== 'parent'
  }

  /** Sends one CCP message; resolves when the peer fulfilled it with the peer-protocol fulfillment. */
  private async send(account: AccountConfig, packet: Buffer): Promise<void> {
    // CCP always goes in sync ILP-over-HTTP, also to `outgoing.mode: async` accounts (the peer must answer it inline)
    const reply = await this.opts.outgoing.send(account, packet, SEND_TIMEOUT_MS)
    if (reply[0] === Type.TYPE_ILP_FULFILL) {
      deserializeCcpResponse(reply)
      return
    }
    let reject: IlpReject | undefined
    try {
      reject = reply[0] === Type.TYPE_ILP_REJECT ? deserializeIlpReject(reply) : undefined
    } catch {
      reject = undefined
    }
    throw new Error(reject ? `rejected ${reject.code}: ${reject.message}` : 'unexpected answer')
  }

  /**
   * Receiving side, every sweep: expires learned candidates whose peer sent
   * nothing within its hold-down time, and sends route control (SYNC, the
   * table id and epoch we have) to receiveRoutes peers: once per lease, after
   * an update with a gap, and again when a peer has gone silent.
   */
  private async maintainReceiving(now: number): Promise<void> {
    const states = await this.store.loadReceiveStates()
    const expired: Array<[string, string]> = []
    for (const entry of this.opts.mapper.table.entries()) {
      for (const c of entry.candidates) {
        if (c.info.source !== 'learned') continue
        if ((states.get(c.accountId)?.expiresAtMs ?? 0) > now || (c.info.expiresAtMs ?? 0) > now) continue
        expired.push([entry.prefix, c.accountId])
      }
    }
    if (expired.length > 0) {
      const removed = await this.store.expire(expired, now)
      if (removed > 0) this.opts.log.info({ removed }, 'learned routes expired')
    }
    await Promise.all(
      this.receiveRoutesAccounts().map(async (account) => {
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
          await this.send(account, serializeIlpPrepare(control))
        } catch (err) {
          r.backoffMs = Math.min(this.intervalMs, Math.max(MIN_RETRY_MS, r.backoffMs * 2))
          r.nextTryAt = Date.now() + r.backoffMs
          this.opts.log.debug({ err, account: account.id }, 'route control not delivered; retrying')
          return
        }
        r.sentOnce = true
        r.backoffMs = 0
        // a peer that stays silent after this is asked again, but not more often than this
        r.nextTryAt = Date.now() + Math.max(2 * this.intervalMs, 1000)
        if (st?.needsControl === true) await this.store.controlSent(account.id)
      }),
    )
  }
}
