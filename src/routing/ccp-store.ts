import { randomBytes, randomUUID } from 'node:crypto'
import { LuaScript } from '../store/lua-script.js'
import { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'

/** One way the farm can reach an advertised prefix: the next hop ('' = the farm itself), the path as announced, the auth (hex). */
export interface AdvertisedRoute {
  readonly hop: string
  readonly path: readonly string[]
  readonly auth: string
}

/**
 * An advertised prefix: the epoch of its last change and its routes, best
 * first (at most two: a peer that is the first one's next hop gets the
 * second). No routes: withdrawn (a tombstone, so a delta still carries it).
 */
export interface AdvertisedEntry {
  readonly e: number
  readonly r: readonly AdvertisedRoute[]
}

/** The farm's routing table as CCP sees it: id (a UUID, stable per farm), current epoch, auth secret. */
export interface TableMeta {
  readonly id: string
  readonly epoch: number
  readonly secret: Buffer
}

/** The last `peer.route.control` a peer sent (any worker writes it, the leader acts on it). */
export interface ControlState {
  readonly mode: number
  readonly tableId: string
  readonly epoch: number
  /** Unique per message: the leader applies each one once. */
  readonly n: string
}

/** What the farm knows of a peer's table (receiving side). */
export interface ReceiveState {
  readonly tableId: string
  readonly epoch: number
  /** The peer's routes stay at least until this (set by every update it sends: now + the hold-down time it gave). */
  readonly expiresAtMs: number
  /** An update came with a gap: ask the peer again (route control with our epoch). */
  readonly needsControl?: boolean
}

/** A route from a peer's update, already filtered (valid prefix, no loop, not our own). */
export interface LearnedRoute {
  readonly prefix: string
  readonly path: readonly string[]
  /** Hex. */
  readonly auth: string
}

export type UpdateResult = 'applied' | 'gap' | 'old'

/** More changed prefixes than this in one script: publish `*` (reload everything) instead of each. */
const PUBLISH_EACH_MAX = 200

/**
 * Redis side of route announcements (CCP), next to the routing table
 * (`{prefix}routes`, route-store.ts):
 *
 * - `ccp:table` (hash): `id` (UUID), `epoch` (current epoch index), `secret`
 *   (hex, 32 random bytes: auth of the farm's own routes).
 * - `ccp:adv` (hash): advertised prefix → JSON AdvertisedEntry (written by the leader only).
 * - `ccp:control` (hash): account → JSON ControlState, the last route control it sent.
 * - `ccp:recv` (hash): account → JSON ReceiveState.
 *
 * Learned candidates are written into `routes` by one script per update
 * (read, modify, write, publish on `routes:changed`), like every other change.
 */
export class CcpStore {
  readonly tableKey: string
  readonly advKey: string
  readonly controlKey: string
  readonly recvKey: string
  readonly routesKey: string
  readonly channel: string
  readonly leaderKey: string

  constructor(
    private readonly redis: RedisClient,
    keyPrefix: string,
  ) {
    const keys = new Keys(keyPrefix)
    this.tableKey = keys.ccpTable
    this.advKey = keys.ccpAdvertised
    this.controlKey = keys.ccpControl
    this.recvKey = keys.ccpReceived
    this.routesKey = keys.routes
    this.channel = keys.routesChanged
    this.leaderKey = keys.leader
  }

  /** The table's id, epoch and secret, created on first use (HSETNX: the first leader's values stay). */
  async ensureTable(): Promise<TableMeta> {
    const raw = (await ENSURE_TABLE.run(this.redis, [this.tableKey], [randomUUID(), randomBytes(32).toString('hex')])) as string[]
    const meta = toRecord(raw)
    return { id: meta.id!, epoch: Number(meta.epoch ?? 0), secret: Buffer.from(meta.secret!, 'hex') }
  }

  async loadAdvertised(): Promise<Map<string, AdvertisedEntry>> {
    const raw = await this.redis.hgetall(this.advKey)
    const out = new Map<string, AdvertisedEntry>()
    for (const [prefix, json] of Object.entries(raw)) {
      const entry = parseJson(json) as AdvertisedEntry | undefined
      if (entry && typeof entry.e === 'number' && Array.isArray(entry.r)) out.set(prefix, entry)
    }
    return out
  }

  /**
   * Writes changed advertised entries and the new epoch, only if `bootId`
   * still holds the leader lease and the epoch is still `fromEpoch` (two
   * leaders can never both advance it). False: not written.
   */
  async writeAdvertised(bootId: string, fromEpoch: number, toEpoch: number, changes: ReadonlyArray<readonly [string, AdvertisedEntry]>): Promise<boolean> {
    const args: string[] = [bootId, String(fromEpoch), String(toEpoch)]
    for (const [prefix, entry] of changes) args.push(prefix, JSON.stringify(entry))
    const ok = await WRITE_ADVERTISED.run(this.redis, [this.tableKey, this.advKey, this.leaderKey], [...args])
    return Number(ok) === 1
  }

  async recordControl(accountId: string, control: Omit<ControlState, 'n'>): Promise<void> {
    const state: ControlState = { ...control, n: randomUUID() }
    await this.redis.hset(this.controlKey, accountId, JSON.stringify(state))
  }

  async loadControls(): Promise<Map<string, ControlState>> {
    const raw = await this.redis.hgetall(this.controlKey)
    const out = new Map<string, ControlState>()
    for (const [id, json] of Object.entries(raw)) {
      const c = parseJson(json) as ControlState | undefined
      if (c && typeof c.mode === 'number' && typeof c.epoch === 'number' && typeof c.n === 'string') out.set(id, c)
    }
    return out
  }

  async loadReceiveStates(): Promise<Map<string, ReceiveState>> {
    const raw = await this.redis.hgetall(this.recvKey)
    const out = new Map<string, ReceiveState>()
    for (const [id, json] of Object.entries(raw)) {
      const s = parseJson(json) as ReceiveState | undefined
      if (s && typeof s.epoch === 'number') out.set(id, s)
    }
    return out
  }

  async receiveState(accountId: string): Promise<ReceiveState | undefined> {
    const json = await this.redis.hget(this.recvKey, accountId)
    return json === null ? undefined : (parseJson(json) as ReceiveState | undefined)
  }

  /** A route control was sent to the peer: its gap flag is cleared. */
  async controlSent(accountId: string): Promise<void> {
    await CLEAR_NEEDS_CONTROL.run(this.redis, [this.recvKey], [accountId])
  }

  /**
   * One `peer.route.update` from `accountId`, in one script: a new table id
   * forgets the routes learned under the old one; the peer's expiry is
   * bumped; then, unless the update leaves a gap (`fromEpoch` > what we
   * have: flagged, a route control will ask again) or is old, withdrawals
   * remove the peer's learned candidates and new routes add or refresh them
   * (a static candidate of that account is kept as it is).
   */
  async applyUpdate(
    accountId: string,
    update: { tableId: string; fromEpoch: number; toEpoch: number; holdDownMs: number; routes: readonly LearnedRoute[]; withdrawn: readonly string[] },
    now: number,
  ): Promise<{ result: UpdateResult; changed: number }> {
    const reply = (await APPLY_UPDATE.run(
      this.redis,
      [this.routesKey, this.recvKey],
      [
        accountId,
        update.tableId,
        String(update.fromEpoch),
        String(update.toEpoch),
        String(update.holdDownMs),
        String(now),
        JSON.stringify(update.routes.map((r) => ({ p: r.prefix, path: r.path, auth: r.auth }))),
        JSON.stringify(update.withdrawn),
        this.channel,
        String(PUBLISH_EACH_MAX),
      ],
    )) as [string, number]
    return { result: reply[0] as UpdateResult, changed: Number(reply[1]) }
  }

  /**
   * Removes learned candidates that were not refreshed: each only if, in
   * Redis now, it is still learned, its own expiry and its peer's are past.
   */
  async expire(candidates: ReadonlyArray<readonly [string, string]>, now: number): Promise<number> {
    if (candidates.length === 0) return 0
    const removed = await EXPIRE_LEARNED.run(
      this.redis,
      [this.routesKey, this.recvKey],
      [String(now), this.channel, String(PUBLISH_EACH_MAX), JSON.stringify(candidates)],
    )
    return Number(removed)
  }
}

function toRecord(flat: string[]): Record<string, string> {
  const out: Record<string, string> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i]!] = flat[i + 1]!
  return out
}

function parseJson(json: string): unknown {
  try {
    return JSON.parse(json) as unknown
  } catch {
    return undefined
  }
}

/** The route scripts (lua/routing/): every change of the shared table is one atomic script. */
const ENSURE_TABLE = new LuaScript('routing/ccp-ensure-table.lua')
const WRITE_ADVERTISED = new LuaScript('routing/ccp-write-advertised.lua')
const CLEAR_NEEDS_CONTROL = new LuaScript('routing/ccp-clear-needs-control.lua')
const APPLY_UPDATE = new LuaScript('routing/ccp-apply-update.lua', ['routing/lib/routes.lua'])
const EXPIRE_LEARNED = new LuaScript('routing/ccp-expire-learned.lua', ['routing/lib/routes.lua'])
