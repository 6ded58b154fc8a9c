import { randomBytes, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'

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
    private readonly redis: Redis,
    keyPrefix: string,
  ) {
    this.tableKey = `${keyPrefix}ccp:table`
    this.advKey = `${keyPrefix}ccp:adv`
    this.controlKey = `${keyPrefix}ccp:control`
    this.recvKey = `${keyPrefix}ccp:recv`
    this.routesKey = `${keyPrefix}routes`
    this.channel = `${keyPrefix}routes:changed`
    this.leaderKey = `${keyPrefix}leader`
  }

  /** The table's id, epoch and secret, created on first use (HSETNX: the first leader's values stay). */
  async ensureTable(): Promise<TableMeta> {
    const raw = (await this.redis.eval(ENSURE_TABLE, 1, this.tableKey, randomUUID(), randomBytes(32).toString('hex'))) as string[]
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
    const ok = await this.redis.eval(WRITE_ADVERTISED, 3, this.tableKey, this.advKey, this.leaderKey, ...args)
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
    await this.redis.eval(CLEAR_NEEDS_CONTROL, 1, this.recvKey, accountId)
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
    const reply = (await this.redis.eval(
      APPLY_UPDATE,
      2,
      this.routesKey,
      this.recvKey,
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
    )) as [string, number]
    return { result: reply[0] as UpdateResult, changed: Number(reply[1]) }
  }

  /**
   * Removes learned candidates that were not refreshed: each only if, in
   * Redis now, it is still learned, its own expiry and its peer's are past.
   */
  async expire(candidates: ReadonlyArray<readonly [string, string]>, now: number): Promise<number> {
    if (candidates.length === 0) return 0
    const removed = await this.redis.eval(
      EXPIRE_LEARNED,
      2,
      this.routesKey,
      this.recvKey,
      String(now),
      this.channel,
      String(PUBLISH_EACH_MAX),
      JSON.stringify(candidates),
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

/** KEYS[1] table hash; ARGV: a fresh id, a fresh secret. */
const ENSURE_TABLE = `
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'secret', ARGV[2])
redis.call('HSETNX', KEYS[1], 'epoch', '0')
return redis.call('HGETALL', KEYS[1])
`

/** KEYS: table, adv, leader; ARGV: bootId, fromEpoch, toEpoch, then prefix, entry JSON pairs. */
const WRITE_ADVERTISED = `
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
return 1
`

/** KEYS[1] recv hash; ARGV[1] account. */
const CLEAR_NEEDS_CONTROL = `
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local s = cjson.decode(raw)
if not s.needsControl then return 0 end
s.needsControl = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(s))
return 1
`

/** Shared: write a prefix's candidates back (none: delete the field). */
const WRITE_PREFIX = `
local function write_prefix(key, prefix, t)
  if next(t) == nil then redis.call('HDEL', key, prefix) else redis.call('HSET', key, prefix, cjson.encode(t)) end
end
local function publish(channel, changed, max)
  if #changed == 0 then return end
  if #changed > max then redis.call('PUBLISH', channel, '*') return end
  for _, p in ipairs(changed) do redis.call('PUBLISH', channel, p) end
end
`

/**
 * KEYS: routes, recv. ARGV: account, tableId, fromEpoch, toEpoch, holdDownMs,
 * now, routes JSON [{p, path, auth}], withdrawn JSON [prefix], channel, max
 * prefixes published one by one. Returns {result, changed prefixes}.
 */
const APPLY_UPDATE = `${WRITE_PREFIX}
local peer = ARGV[1]
local tableId = ARGV[2]
local fromEpoch = tonumber(ARGV[3])
local toEpoch = tonumber(ARGV[4])
local holdDown = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local changed = {}
local state = { tableId = '', epoch = 0, expiresAtMs = 0 }
local raw = redis.call('HGET', KEYS[2], peer)
if raw then state = cjson.decode(raw) end
if state.tableId ~= tableId then
  -- a new table (the peer restarted): forget what it told us before, its full table follows
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local t = cjson.decode(all[i + 1])
    if t[peer] ~= nil and t[peer].source == 'learned' then
      t[peer] = nil
      write_prefix(KEYS[1], all[i], t)
      table.insert(changed, all[i])
    end
  end
  state.tableId = tableId
  state.epoch = 0
end
-- the peer's latest word: its routes stay until now + the hold-down it just gave (each route also keeps its own)
state.expiresAtMs = now + holdDown
local result = 'applied'
if fromEpoch > state.epoch then
  result = 'gap'
  state.needsControl = true
elseif toEpoch < state.epoch then
  result = 'old'
else
  for _, prefix in ipairs(cjson.decode(ARGV[8])) do
    local current = redis.call('HGET', KEYS[1], prefix)
    if current then
      local t = cjson.decode(current)
      if t[peer] ~= nil and t[peer].source == 'learned' then
        t[peer] = nil
        write_prefix(KEYS[1], prefix, t)
        table.insert(changed, prefix)
      end
    end
  end
  for _, route in ipairs(cjson.decode(ARGV[7])) do
    local current = redis.call('HGET', KEYS[1], route.p)
    local t = {}
    if current then t = cjson.decode(current) end
    local old = t[peer]
    if old == nil or old.source == 'learned' then
      local newPath = cjson.encode(route.path)
      if old == nil or cjson.encode(old.path or {}) ~= newPath or old.auth ~= route.auth then table.insert(changed, route.p) end
      t[peer] = { source = 'learned', path = route.path, auth = route.auth, expiresAtMs = now + holdDown }
      write_prefix(KEYS[1], route.p, t)
    end
  end
  state.epoch = toEpoch
end
redis.call('HSET', KEYS[2], peer, cjson.encode(state))
publish(ARGV[9], changed, tonumber(ARGV[10]))
return { result, #changed }
`

/** KEYS: routes, recv. ARGV: now, channel, max published one by one, JSON [[prefix, account], ...]. */
const EXPIRE_LEARNED = `${WRITE_PREFIX}
local now = tonumber(ARGV[1])
local changed = {}
local peerExpiry = {}
for _, pair in ipairs(cjson.decode(ARGV[4])) do
  local prefix, peer = pair[1], pair[2]
  if peerExpiry[peer] == nil then
    local raw = redis.call('HGET', KEYS[2], peer)
    peerExpiry[peer] = raw and (tonumber(cjson.decode(raw).expiresAtMs) or 0) or 0
  end
  if peerExpiry[peer] <= now then
    local current = redis.call('HGET', KEYS[1], prefix)
    if current then
      local t = cjson.decode(current)
      local c = t[peer]
      if c ~= nil and c.source == 'learned' and (tonumber(c.expiresAtMs) or 0) <= now then
        t[peer] = nil
        write_prefix(KEYS[1], prefix, t)
        table.insert(changed, prefix)
      end
    end
  end
end
publish(ARGV[2], changed, tonumber(ARGV[3]))
return #changed
`
