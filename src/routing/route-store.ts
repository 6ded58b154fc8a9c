import type { Redis } from 'ioredis'
import type { CandidateInfo } from './routing-table.js'

/**
 * The routing table in Redis, shared by every worker:
 *
 * - `{prefix}routes` (hash): field = route prefix, value = JSON object
 *   `{ "<accountId>": { "source": "static", "addedBy": "config" | "admin" }, ... }`,
 *   one key per candidate (learned routes: `{"source": "learned", "path", "auth", "expiresAtMs"}`, see ccp-store.ts).
 * - `{prefix}routes:stats` (hash): `<prefix>|<account>|s` and `…|f`, the
 *   farm-wide successes and failures of a candidate (HINCRBY, batched by each worker).
 * - channel `{prefix}routes:changed`: a prefix whose candidates changed, or `*`
 *   (everything may have changed: reload).
 *
 * A prefix's candidates change in one script (read, modify, write, publish),
 * so two admins changing one prefix at once cannot lose each other's change.
 */
export class RouteStore {
  readonly routesKey: string
  readonly statsKey: string
  readonly channel: string

  constructor(
    private readonly redis: Redis,
    keyPrefix: string,
  ) {
    this.routesKey = `${keyPrefix}routes`
    this.statsKey = `${keyPrefix}routes:stats`
    this.channel = `${keyPrefix}routes:changed`
  }

  /** Every prefix with its candidates. */
  async loadAll(): Promise<Map<string, Map<string, CandidateInfo>>> {
    const raw = await this.redis.hgetall(this.routesKey)
    const out = new Map<string, Map<string, CandidateInfo>>()
    for (const [prefix, json] of Object.entries(raw)) {
      const candidates = parseCandidates(json)
      if (candidates.size > 0) out.set(prefix, candidates)
    }
    return out
  }

  /** The candidates of one prefix (empty: none). */
  async load(prefix: string): Promise<Map<string, CandidateInfo>> {
    const json = await this.redis.hget(this.routesKey, prefix)
    return json === null ? new Map() : parseCandidates(json)
  }

  /** Adds or replaces one candidate and tells every worker. */
  async put(prefix: string, accountId: string, info: CandidateInfo): Promise<void> {
    await this.redis.eval(CHANGE_CANDIDATE, 1, this.routesKey, prefix, accountId, JSON.stringify(info), this.channel)
  }

  /** Removes one candidate (or, without `accountId`, every static candidate of the prefix); false if there was none. */
  async remove(prefix: string, accountId: string | undefined): Promise<boolean> {
    const removed = await this.redis.eval(CHANGE_CANDIDATE, 1, this.routesKey, prefix, accountId ?? '', '', this.channel)
    return Number(removed) > 0
  }

  /**
   * Makes the config's static routes the `addedBy: config` candidates: adds
   * the missing ones, removes config candidates the config no longer has,
   * keeps admin-added and learned ones. Every worker runs it at start (same
   * config: no change the second time); a change is published as `*`.
   */
  async applyConfig(routes: ReadonlyMap<string, ReadonlySet<string>>): Promise<void> {
    const want: Record<string, string[]> = {}
    for (const [prefix, accounts] of routes) want[prefix] = [...accounts]
    await this.redis.eval(APPLY_CONFIG, 1, this.routesKey, JSON.stringify(want), this.channel)
  }

  /** Adds this worker's counts to the farm-wide ones, then reads back `fields` (HINCRBY… then HMGET, one pipeline). */
  async flushAndRead(increments: ReadonlyArray<readonly [string, number]>, fields: readonly string[]): Promise<Array<number>> {
    const pipeline = this.redis.pipeline()
    for (const [field, by] of increments) pipeline.hincrby(this.statsKey, field, by)
    if (fields.length > 0) pipeline.hmget(this.statsKey, ...fields)
    const results = (await pipeline.exec()) ?? []
    for (const [err] of results) if (err) throw err
    if (fields.length === 0) return []
    const values = results[results.length - 1]![1] as Array<string | null>
    return values.map((v) => (v === null ? 0 : Number(v)))
  }

  /** Farm-wide successes and failures of some candidates (keys `<prefix>|<account>`). */
  async readStats(keys: readonly string[]): Promise<Array<{ successes: number; failures: number }>> {
    if (keys.length === 0) return []
    const values = await this.redis.hmget(this.statsKey, ...keys.flatMap((k) => [`${k}|s`, `${k}|f`]))
    return keys.map((_, i) => ({ successes: Number(values[2 * i] ?? 0), failures: Number(values[2 * i + 1] ?? 0) }))
  }
}

function parseCandidates(json: string): Map<string, CandidateInfo> {
  const out = new Map<string, CandidateInfo>()
  let parsed: unknown
  try {
    parsed = JSON.parse(json)
  } catch {
    return out
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return out
  for (const [accountId, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (value === null || typeof value !== 'object') continue
    const v = value as Record<string, unknown>
    const source = v.source === 'learned' ? 'learned' : 'static'
    const info: CandidateInfo = {
      source,
      ...(v.addedBy === 'config' || v.addedBy === 'admin' ? { addedBy: v.addedBy } : {}),
      ...(Array.isArray(v.path) ? { path: v.path.filter((p): p is string => typeof p === 'string') } : {}),
      ...(typeof v.expiresAtMs === 'number' ? { expiresAtMs: v.expiresAtMs } : {}),
      ...(typeof v.auth === 'string' ? { auth: v.auth } : {}),
    }
    out.set(accountId, info)
  }
  return out
}

/**
 * KEYS[1] routes hash; ARGV: prefix, account ('' with no info: every static
 * candidate), info JSON ('' to remove), channel. Returns how many candidates
 * were added or removed (a replaced one counts 0).
 */
const CHANGE_CANDIDATE = `
local current = redis.call('HGET', KEYS[1], ARGV[1])
local t = {}
if current then t = cjson.decode(current) end
local changed = 0
if ARGV[3] ~= '' then
  if t[ARGV[2]] == nil then changed = 1 end
  t[ARGV[2]] = cjson.decode(ARGV[3])
elseif ARGV[2] ~= '' then
  if t[ARGV[2]] ~= nil then changed = 1 end
  t[ARGV[2]] = nil
else
  for account, info in pairs(t) do
    if info.source == 'static' then
      t[account] = nil
      changed = changed + 1
    end
  end
end
if next(t) == nil then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(t))
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return changed
`

/** KEYS[1] routes hash; ARGV: JSON {prefix: [accounts]} of the config, channel. */
const APPLY_CONFIG = `
local want = cjson.decode(ARGV[1])
local changed = false
local all = redis.call('HGETALL', KEYS[1])
local seen = {}
for i = 1, #all, 2 do
  local prefix = all[i]
  local t = cjson.decode(all[i + 1])
  local dirty = false
  local keep = {}
  if want[prefix] then for _, a in ipairs(want[prefix]) do keep[a] = true end end
  for account, info in pairs(t) do
    if info.addedBy == 'config' and not keep[account] then
      t[account] = nil
      dirty = true
    end
  end
  for account in pairs(keep) do
    if t[account] == nil or t[account].source ~= 'static' then
      t[account] = { source = 'static', addedBy = 'config' }
      dirty = true
    end
  end
  seen[prefix] = true
  if dirty then
    changed = true
    if next(t) == nil then redis.call('HDEL', KEYS[1], prefix) else redis.call('HSET', KEYS[1], prefix, cjson.encode(t)) end
  end
end
for prefix, accounts in pairs(want) do
  if not seen[prefix] and #accounts > 0 then
    local t = {}
    for _, a in ipairs(accounts) do t[a] = { source = 'static', addedBy = 'config' } end
    redis.call('HSET', KEYS[1], prefix, cjson.encode(t))
    changed = true
  end
end
if changed then redis.call('PUBLISH', ARGV[2], '*') end
return changed and 1 or 0
`
