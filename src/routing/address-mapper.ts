import type { Logger } from 'pino'
import { type AccountDirectory, canReceive, type LoadedAccount } from '../accounts/registry.js'
import type { FarmConfig } from '../config/schema.js'
import { IlpRejection } from '../packet/reject.js'
import type { Ledger } from '../store/ledger.js'
import { openSubscriber, type RedisClient, type RedisTarget, type Subscriber } from '../store/redis.js'
import { choose, type HopLiquidity, type RoutingPolicy } from './policy.js'
import { RouteStore } from './route-store.js'
import { type Candidate, configRoutes, type RouteEntry, RoutingTable, statsKey } from './routing-table.js'
import { isHostedReceiverDestination } from '../util/address.js'
import { CandidateStats, type HopOutcome } from './stats.js'

/** Child route entries kept for reuse; past this the set starts over (they are cheap to make). */
const MAX_CHILD_ENTRIES = 10_000

export interface AddressMapperOptions {
  /** The worker's command connection. */
  redis: RedisClient
  /** For the subscriber connection (a subscribed connection can run no other command). */
  redisTarget: string | RedisTarget
  config: FarmConfig
  accounts: AccountDirectory
  ledger: Ledger
  log: Logger
  /** How often outcome counts are flushed to Redis and read back (default 1000 ms). */
  statsIntervalMs?: number
  /** How often the next hops' balances are re-read (default 200 ms). */
  liquidityIntervalMs?: number
  /** Uniform in [0, 1) (default Math.random). */
  random?: () => number
}

/** The route step's answer: the next hop and the candidate whose outcome the settle step records. */
export interface RouteChoice {
  readonly hop: LoadedAccount
  readonly candidate: Candidate
}

/** One candidate as `GET /admin/routes` shows it. */
export interface CandidateView {
  account: string
  source: string
  addedBy: string | null
  /** Who made the next hop's account (config, admin, ticket, signup); null when it is gone. */
  origin: string | null
  /** maxBalance − balance − creditsInFlight; null: unbounded (no maxBalance). */
  liquidity: string | null
  balance: string
  successes: number
  failures: number
  successRate: number
  recentTransientFailures: number
  consecutiveFailures: number
  dead: boolean
}

/**
 * The address mapper: the routing table of every worker, kept equal to the
 * one in Redis (loaded at start, then changes pushed over pub/sub), the
 * policy that picks a candidate per packet, the per-worker caches it reads
 * (next hops' liquidity every 200 ms) and the outcome counters (flushed to
 * Redis and read back every second). Nothing here adds a Redis round trip to
 * a packet.
 */
/**
 * The account exists but nobody is listening for it right now (a user between two `receive` runs):
 * temporary, so a sender retries, and told apart from an address that names no account (F02).
 */
function offlineReject(accountId: string): IlpRejection {
  return new IlpRejection('T01', `receiver offline: ${accountId} has no RPC URL registered and no outgoing URL; retry once it is reachable`)
}

export class AddressMapper {
  readonly table = new RoutingTable()
  readonly policy: RoutingPolicy
  readonly store: RouteStore
  private readonly accounts: AccountDirectory
  /** `<ilpAddress>.`: a destination under it names a child by its next segment. */
  private readonly childPrefix: string
  /** Candidates of children routed by address (no table entry, no shared counters): reused while in use. */
  private readonly children = new Map<string, RouteEntry>()
  private readonly ledger: Ledger
  private readonly log: Logger
  private readonly random: () => number
  private readonly liquidity = new Map<string, HopLiquidity>()
  /** Candidates with outcomes not yet flushed. */
  private readonly dirty = new Set<CandidateStats>()
  /** Accounts that are one of several candidates for some prefix: their liquidity is cached. */
  private contested: string[] = []
  /** Stats keys of candidates of multi-candidate prefixes: their farm-wide counts are read back. */
  private contestedStats: CandidateStats[] = []
  private subscriber: Subscriber | undefined
  private timers: NodeJS.Timeout[] = []
  private flushing: Promise<void> | undefined
  private closed = false
  private readonly changeListeners = new Set<() => void>()

  /** The farm answers for its children at their hosted receiving address (config `receiver.enabled`). */
  private readonly hostsReceivers: boolean
  private readonly ilpAddress: string
  private readonly usable: (accountId: string) => boolean
  private readonly liquidityOf = (accountId: string): HopLiquidity | undefined => this.liquidity.get(accountId)

  private constructor(opts: AddressMapperOptions) {
    this.policy = opts.config.routing.policy
    this.store = new RouteStore(opts.redis, opts.config.redis.keyPrefix)
    this.accounts = opts.accounts
    this.childPrefix = `${opts.config.ilpAddress}.`
    this.ilpAddress = opts.config.ilpAddress
    this.hostsReceivers = opts.config.receiver.enabled
    // an account not at hand counts as usable here: it is loaded, and checked, once chosen
    this.usable = (accountId) => {
      const known = opts.accounts.peek(accountId)
      return known === undefined || canReceive(known)
    }
    this.ledger = opts.ledger
    this.log = opts.log
    this.random = opts.random ?? Math.random
  }

  /**
   * Subscribes to route changes, writes the config's static routes into
   * Redis, loads the table, then keeps it current.
   */
  static async start(opts: AddressMapperOptions): Promise<AddressMapper> {
    const mapper = new AddressMapper(opts)
    // a reconnect may have missed changes: the table is reloaded whole once it is back
    mapper.subscriber = await openSubscriber(opts.redisTarget, mapper.store.channel, {
      onMessage: (message) => mapper.onChange(message),
      onReconnect: () => mapper.reloadSoon(),
    })
    await mapper.store.applyConfig(configRoutes(opts.config))
    await mapper.reloadAll()
    await mapper.refreshLiquidity()
    const statsMs = opts.statsIntervalMs ?? 1000
    const liquidityMs = opts.liquidityIntervalMs ?? 200
    mapper.timers.push(setInterval(() => void mapper.flushStats(), statsMs).unref())
    mapper.timers.push(setInterval(() => void mapper.refreshLiquidity(), liquidityMs).unref())
    return mapper
  }

  /**
   * The routes for `destination`: the table's longest prefix, or the child
   * `<ilpAddress>.<id>` names when no table prefix is at least that long.
   * A child's route needs no table entry, so the table holds only what
   * operators and peers configure or announce.
   */
  lookup(destination: string): RouteEntry | undefined {
    const entry = this.table.lookup(destination)
    if (!destination.startsWith(this.childPrefix)) return entry
    const end = destination.indexOf('.', this.childPrefix.length)
    const childAddress = end < 0 ? destination : destination.slice(0, end)
    if (childAddress.length === this.childPrefix.length) return entry
    if (entry !== undefined && entry.prefix.length >= childAddress.length) return entry
    return this.childEntry(childAddress)
  }

  private childEntry(prefix: string): RouteEntry {
    let entry = this.children.get(prefix)
    if (entry === undefined) {
      const accountId = prefix.slice(this.childPrefix.length)
      entry = { prefix, candidates: [{ accountId, info: { source: 'address' }, stats: new CandidateStats(statsKey(prefix, accountId)) }] }
      if (this.children.size >= MAX_CHILD_ENTRIES) this.children.clear()
      this.children.set(prefix, entry)
    }
    return entry
  }

  /**
   * The next hop for a packet (the route step): F02 when there is no
   * candidate but the sender, when the chosen account does not exist (or is
   * no child, for a child's address); T01 when it cannot be sent packets now.
   * An answer without a Promise when the hop is at hand (the usual case).
   */
  choose(destination: string, fromId: string, amount: string): RouteChoice | Promise<RouteChoice> {
    const entry = this.lookup(destination)
    if (entry === undefined) throw new IlpRejection('F02', `no route to ${destination}`)
    const hosted = this.hostedCandidate(entry, destination, fromId)
    const candidate = hosted ?? this.pick(entry, destination, fromId, amount)
    const known = this.accounts.peek(candidate.accountId)
    const choice = known === undefined ? undefined : this.accept(entry, candidate, known, amount, hosted !== undefined)
    return choice ?? this.chooseLoading(entry, candidate, destination, fromId, amount, hosted !== undefined)
  }

  /** A child's own candidate when the packet is addressed to its farm-hosted receiver: reachable while its user is offline. */
  private hostedCandidate(entry: RouteEntry, destination: string, fromId: string): Candidate | undefined {
    if (!this.hostsReceivers || entry.candidates.length !== 1) return undefined
    const candidate = entry.candidates[0]!
    if (candidate.info.source !== 'address' || candidate.accountId === fromId) return undefined
    return isHostedReceiverDestination(destination, this.ilpAddress, candidate.accountId) ? candidate : undefined
  }

  /** The chosen hop read from Redis; a child's address that names no child falls back to the table's own route. */
  private async chooseLoading(entry: RouteEntry, candidate: Candidate, destination: string, fromId: string, amount: string, hosted: boolean): Promise<RouteChoice> {
    const hop = await this.accounts.load(candidate.accountId)
    const choice = hop === undefined ? undefined : this.accept(entry, candidate, hop, amount, hosted)
    if (choice !== undefined) return choice
    const table = candidate.info.source === 'address' ? this.table.lookup(destination) : undefined
    if (table !== undefined) {
      const other = this.pick(table, destination, fromId, amount)
      const otherHop = this.accounts.peek(other.accountId) ?? (await this.accounts.load(other.accountId))
      const fallback = otherHop === undefined ? undefined : this.accept(table, other, otherHop, amount)
      if (fallback !== undefined) return fallback
    }
    throw new IlpRejection('F02', `no route to ${destination}`)
  }

  /** The policy's choice among the entry's candidates; F02 (or T01 for a receiver offline) when none can be chosen. */
  private pick(entry: RouteEntry, destination: string, fromId: string, amount: string): Candidate {
    const choice = choose(this.policy, {
      entry,
      fromId,
      amount: entry.candidates.length > 1 ? BigInt(amount) : 0n,
      now: Date.now(),
      random: this.random,
      usable: this.usable,
      liquidityOf: this.liquidityOf,
    })
    if (choice.kind !== 'no-route') return choice.candidate
    // a candidate left out only because it cannot be reached now (its account at hand): offline, not unknown
    const offline = entry.candidates.find((c) => {
      const known = c.accountId === fromId ? undefined : this.accounts.peek(c.accountId)
      return known !== undefined && !canReceive(known) && (c.info.source !== 'address' || known.account.relation === 'child')
    })
    if (offline !== undefined) throw offlineReject(offline.accountId)
    const back = entry.candidates.some((c) => c.accountId === fromId)
    throw new IlpRejection('F02', back ? `no route to ${destination}: it leads back to the sender` : `no route to ${destination}`)
  }

  /** The choice with its account; undefined when a child's address names an account that is no child; T01 when it cannot receive. */
  private accept(entry: RouteEntry, candidate: Candidate, hop: LoadedAccount, amount: string, hosted = false): RouteChoice | undefined {
    if (candidate.info.source === 'address' && hop.account.relation !== 'child') return undefined
    if (!hosted && !canReceive(hop)) throw offlineReject(candidate.accountId)
    if (entry.candidates.length > 1) this.assumeSent(candidate.accountId, amount)
    return { hop, candidate }
  }

  /** Until the next refresh, count a packet sent to `accountId` as if fulfilled (the balance policies see it at once). */
  private assumeSent(accountId: string, amount: string): void {
    const known = this.liquidity.get(accountId)
    if (!known) return
    const a = BigInt(amount)
    this.liquidity.set(accountId, {
      balance: known.balance + a,
      liquidity: known.liquidity === undefined ? undefined : known.liquidity - a,
    })
  }

  /** One packet's outcome (the settle step): counted in memory, flushed with the next batch. */
  record(candidate: Candidate, outcome: HopOutcome): void {
    candidate.stats.record(outcome, Date.now())
    // a child routed by address has one candidate: nothing to rank, nothing farm-wide to keep
    if (outcome !== 'neutral' && candidate.info.source !== 'address') this.dirty.add(candidate.stats)
  }

  // ---- runtime changes (admin API) ----

  /** Adds a static candidate (`addedBy: admin`); every worker has it within a second. */
  async addStatic(prefix: string, accountId: string): Promise<void> {
    await this.store.put(prefix, accountId, { source: 'static', addedBy: 'admin' })
    await this.reloadPrefix(prefix)
  }

  /** Removes a static candidate (every static one without `accountId`); false if there was none. */
  async removeStatic(prefix: string, accountId: string | undefined): Promise<boolean> {
    const entry = this.table.get(prefix)
    if (accountId !== undefined && entry?.candidates.find((c) => c.accountId === accountId)?.info.source === 'learned') return false
    const removed = await this.store.remove(prefix, accountId)
    await this.reloadPrefix(prefix)
    return removed
  }

  /** The table with each candidate's liquidity (read now), balance, farm-wide counts and health. */
  async describe(): Promise<Array<{ prefix: string; candidates: CandidateView[] }>> {
    const entries = [...this.table.entries()].sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0))
    const accountIds = new Set(entries.flatMap((e) => e.candidates.map((c) => c.accountId)))
    const liquidity = new Map<string, HopLiquidity>()
    const origins = new Map<string, string>()
    await Promise.all(
      [...accountIds].map(async (id) => {
        const [l, loaded] = await Promise.all([this.readLiquidity(id), this.accounts.load(id)])
        liquidity.set(id, l)
        if (loaded !== undefined) origins.set(id, loaded.origin)
      }),
    )
    const all = entries.flatMap((e) => e.candidates)
    const totals = await this.store.readStats(all.map((c) => c.stats.key))
    const farmWide = new Map(all.map((c, i) => [c, totals[i]!]))
    const now = Date.now()
    return entries.map((entry) => ({
      prefix: entry.prefix,
      candidates: entry.candidates.map((c) => {
        const l = liquidity.get(c.accountId)
        return {
          account: c.accountId,
          source: c.info.source,
          addedBy: c.info.addedBy ?? null,
          origin: origins.get(c.accountId) ?? null,
          liquidity: l?.liquidity === undefined ? null : l.liquidity.toString(),
          balance: (l?.balance ?? 0n).toString(),
          // flushed by every worker, plus this worker's not yet flushed
          successes: farmWide.get(c)!.successes + c.stats.pendingSuccesses,
          failures: farmWide.get(c)!.failures + c.stats.pendingFailures,
          successRate: c.stats.successRate(now),
          recentTransientFailures: c.stats.recentTransient(now),
          consecutiveFailures: c.stats.consecutiveFailures,
          dead: c.stats.isDead(now),
        }
      }),
    }))
  }

  // ---- keeping the table current ----

  private onChange(message: string): void {
    if (this.closed) return
    if (message === '*') this.reloadSoon()
    else void this.reloadPrefix(message).catch((err: unknown) => this.log.warn({ err, prefix: message }, 'could not reload a route'))
  }

  private reloadSoon(): void {
    void this.reloadAll().catch((err: unknown) => {
      this.log.warn({ err }, 'could not reload the routing table; retrying')
      if (!this.closed) setTimeout(() => this.reloadSoon(), 500).unref()
    })
  }

  /** Loads the whole table from Redis (at start, after the subscriber reconnected, on `*`). */
  async reloadAll(): Promise<void> {
    const all = await this.store.loadAll()
    this.table.replaceAll(all)
    this.tableChanged()
  }

  /** Loads one prefix's candidates (after a change message; replies come in order, so the last one wins). */
  async reloadPrefix(prefix: string): Promise<void> {
    const candidates = await this.store.load(prefix)
    this.table.set(prefix, candidates)
    this.tableChanged()
  }

  /** Calls `listener` after every change of the table (CCP: the leader re-announces); returns the unsubscribe. */
  onTableChange(listener: () => void): () => void {
    this.changeListeners.add(listener)
    return () => this.changeListeners.delete(listener)
  }

  private tableChanged(): void {
    for (const listener of this.changeListeners) {
      try {
        listener()
      } catch (err) {
        this.log.error({ err }, 'route change listener failed')
      }
    }
    const contested = new Set<string>()
    const stats: CandidateStats[] = []
    for (const entry of this.table.entries()) {
      if (entry.candidates.length < 2) continue
      for (const c of entry.candidates) {
        contested.add(c.accountId)
        stats.push(c.stats)
      }
    }
    this.contested = [...contested]
    this.contestedStats = stats
  }

  // ---- caches ----

  private async readLiquidity(accountId: string): Promise<HopLiquidity> {
    const b = await this.ledger.balance(accountId)
    const balance = BigInt(b.balance)
    const inFlight = BigInt(b.creditsInFlight)
    const max = (this.accounts.peek(accountId) ?? (await this.accounts.load(accountId)))?.account.maxBalance
    // ranked by balance + credits in flight: what the account will have once the packets towards it are fulfilled
    return { balance: balance + inFlight, liquidity: max === undefined ? undefined : BigInt(max) - balance - inFlight }
  }

  /** Re-reads the balances of the accounts that compete for some prefix (auto-pipelined, one batch). */
  async refreshLiquidity(): Promise<void> {
    const ids = this.contested
    if (ids.length === 0 || this.closed) return
    try {
      const values = await Promise.all(ids.map((id) => this.readLiquidity(id)))
      ids.forEach((id, i) => this.liquidity.set(id, values[i]!))
    } catch (err) {
      this.log.debug({ err }, 'could not refresh next-hop liquidity')
    }
  }

  /**
   * Flushes this worker's outcome counts (one HINCRBY per counter, one
   * pipeline) and reads back the farm-wide counts of contested candidates:
   * what other workers added since the last read enters this worker's window.
   */
  async flushStats(): Promise<void> {
    if (this.flushing) return this.flushing
    this.flushing = this.flushOnce().finally(() => {
      this.flushing = undefined
    })
    return this.flushing
  }

  private async flushOnce(): Promise<void> {
    const increments: Array<[string, number]> = []
    const flushed: Array<[CandidateStats, number, number]> = []
    for (const s of this.dirty) {
      if (s.pendingSuccesses > 0) increments.push([`${s.key}|s`, s.pendingSuccesses])
      if (s.pendingFailures > 0) increments.push([`${s.key}|f`, s.pendingFailures])
      flushed.push([s, s.pendingSuccesses, s.pendingFailures])
      s.pendingSuccesses = 0
      s.pendingFailures = 0
    }
    this.dirty.clear()
    const read = this.contestedStats
    if (increments.length === 0 && read.length === 0) return
    let values: number[]
    try {
      values = await this.store.flushAndRead(
        increments,
        read.flatMap((s) => [`${s.key}|s`, `${s.key}|f`]),
      )
    } catch (err) {
      // put the counts back for the next try
      for (const [stats, s, f] of flushed) {
        stats.pendingSuccesses += s
        stats.pendingFailures += f
        this.dirty.add(stats)
      }
      this.log.debug({ err }, 'could not flush route stats')
      return
    }
    const mine = new Map<CandidateStats, [number, number]>(flushed.map(([stats, s, f]) => [stats, [s, f]]))
    const now = Date.now()
    read.forEach((s, i) => {
      const totalS = values[2 * i]!
      const totalF = values[2 * i + 1]!
      const [ownS, ownF] = mine.get(s) ?? [0, 0]
      // first read of this candidate: take the totals as they are (the window starts with what the farm knows)
      const otherS = totalS - s.lastReadSuccesses - ownS
      const otherF = totalF - s.lastReadFailures - ownF
      s.addRemote(otherS, otherF, now)
      s.lastReadSuccesses = totalS
      s.lastReadFailures = totalF
    })
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearInterval(t)
    this.timers = []
    await this.flushStats().catch(() => undefined)
    this.closed = true
    const subscriber = this.subscriber
    this.subscriber = undefined
    await subscriber?.close()
  }
}

export type { RouteEntry }
