import { LuaScript } from '../store/lua-script.js'
import type { CandidateInfo } from './routing-table.js'
import { Keys } from '../store/keys.js'
import type { RedisClient } from '../store/redis.js'

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
    private readonly redis: RedisClient,
    keyPrefix: string,
  ) {
    const keys = new Keys(keyPrefix)
    this.routesKey = keys.routes
    this.statsKey = keys.routeStats
    this.channel = keys.routesChanged
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
    await CHANGE_CANDIDATE.run(this.redis, [this.routesKey], [prefix, accountId, JSON.stringify(info), this.channel])
  }

  /** Removes one candidate (or, without `accountId`, every static candidate of the prefix); false if there was none. */
  async remove(prefix: string, accountId: string | undefined): Promise<boolean> {
    const removed = await CHANGE_CANDIDATE.run(this.redis, [this.routesKey], [prefix, accountId ?? '', '', this.channel])
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
    await APPLY_CONFIG.run(this.redis, [this.routesKey], [JSON.stringify(want), this.channel])
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

const CHANGE_CANDIDATE = new LuaScript('routing/change-candidate.lua', ['routing/lib/routes.lua'])
const APPLY_CONFIG = new LuaScript('routing/apply-config.lua', ['routing/lib/routes.lua'])
