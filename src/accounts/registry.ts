import { createHash, randomBytes } from 'node:crypto'
import type { Logger } from 'pino'
import { parseAccount } from '../config/load.js'
import type { AccountConfig } from '../config/schema.js'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'
import { isCluster, openSubscriber, publish, type RedisClient, type RedisTarget, type Subscriber } from '../store/redis.js'
import { LruMap } from './account-cache.js'

/** Who made an account: the config file, the admin API, a redeemed ticket, an open sign-up. */
export type AccountOrigin = 'config' | 'admin' | 'ticket' | 'signup'

/**
 * One account as stored in Redis (`{acct:<id>}:cfg`): its config with the
 * token replaced by its SHA-256, who made it, and for accounts that came from
 * the config file the digest of that file entry. A deleted account stays as a
 * tombstone (`deleted`): its id is never handed to someone else by accident,
 * and a worker restarting with the same config file does not bring it back.
 */
export interface AccountRecord {
  account?: AccountConfig
  origin: AccountOrigin
  configDigest?: string
  deleted?: true
  deletedAt?: number
  updatedAt: number
}

/** An account as the packet path uses it: its config, token digest and the user's own RPC URL, read together. */
export interface LoadedAccount {
  readonly account: AccountConfig
  readonly origin: AccountOrigin
  /** SHA-256 of the account's token, or undefined without incoming. */
  readonly tokenDigest: Buffer | undefined
  /** The user's JSON-RPC URL (`ilp_setRpcUrl`), or undefined. */
  readonly rpcUrl: string | undefined
}

/** The accounts as the packet path reads them: cached, loaded on a miss. */
export interface AccountDirectory {
  /** The account if this worker has it at hand (no Redis round trip), else undefined. */
  peek(id: string): LoadedAccount | undefined
  /** The account, from the cache or one Redis round trip; undefined when there is none (or it was deleted). */
  load(id: string): Promise<LoadedAccount | undefined>
}

/** The account can be sent packets: it has an outgoing.url, or its user registered a JSON-RPC URL. */
export function canReceive(loaded: LoadedAccount): boolean {
  return loaded.account.outgoing !== undefined || loaded.rpcUrl !== undefined
}

/** SHA-256 of a token as 64 hex digits: what the farm keeps instead of the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/**
 * A fresh bearer secret (an account token or an onboarding ticket): 256 random bits, base64url.
 * Drawn again when it would begin with "-", since users pass it on a command line
 * (`--token <secret>`), where such a value reads as an option. That costs 0.02 bits of entropy.
 */
export function newToken(): string {
  for (;;) {
    const token = randomBytes(32).toString('base64url')
    if (!token.startsWith('-')) return token
  }
}

/** The account as it is stored: `incoming.token` replaced by `incoming.tokenHash`. */
export function withHashedToken(account: AccountConfig): AccountConfig {
  if (account.incoming?.token === undefined) return account
  const { token, ...incoming } = account.incoming
  return { ...account, incoming: { ...incoming, tokenHash: hashToken(token) } }
}

/**
 * Accounts every worker keeps loaded, whatever the cache holds: parents and
 * peers (the routing table and CCP name them), accounts that carry routes or
 * speak CCP, and those the operator opted into per-account metrics. Their
 * number is what operators configure, not what users sign up.
 */
export function isPinned(account: AccountConfig): boolean {
  return account.relation !== 'child' || account.routes.length > 0 || account.sendRoutes || account.receiveRoutes || account.metrics === true
}

function parseRecord(json: string): AccountRecord | undefined {
  try {
    const value: unknown = JSON.parse(json)
    if (value === null || typeof value !== 'object') return undefined
    return value as AccountRecord
  } catch {
    return undefined
  }
}

/** A live record's account, or undefined for none, a tombstone or an invalid record. */
function liveAccount(record: AccountRecord | undefined): AccountConfig | undefined {
  return record?.account !== undefined && record.deleted !== true ? record.account : undefined
}

/** Default number of accounts a worker keeps in its cache (besides the pinned ones). */
export const DEFAULT_ACCOUNT_CACHE_SIZE = 50_000
/** The change stream keeps about this many entries: a worker that missed more drops its cache. */
const CHANGES_KEPT = 10_000
/** Keys per MGET or MSETNX of a bulk import. */
const MANY_KEYS = 1_000
/** Ids per change stream entry (a bulk import writes several entries). */
const CHANGE_ENTRY_IDS = 100
/** At most this many changes are replayed after a reconnect; more: the cache is dropped instead. */
const CATCH_UP_LIMIT = 1_000
/** Marks a changed id that every worker keeps loaded (see isPinned). */
const PIN_MARK = '^'

const SWAP = new LuaScript('accounts/swap.lua')
const SET_RPC_URL = new LuaScript('accounts/set-rpc-url.lua')
const CLAIM_TOKEN = new LuaScript('accounts/claim-token.lua')
const RELEASE_TOKEN = new LuaScript('accounts/release-token.lua')

export interface AccountRegistryOptions {
  redis: RedisClient
  /** For the subscriber connection (a subscribed connection can run no other command). */
  redisTarget: string | RedisTarget
  keys: Keys
  /** The config file's accounts: written into Redis at start (see applyConfig). */
  configAccounts: readonly AccountConfig[]
  log: Logger
  /** Accounts kept in the cache besides the pinned ones (default DEFAULT_ACCOUNT_CACHE_SIZE). */
  cacheSize?: number
}

/** What a write found and did: the account now stored, or why nothing was written. */
export type WriteResult =
  | { status: 'written'; account: AccountConfig; previous: AccountRecord | undefined }
  | { status: 'unchanged'; account: AccountConfig }
  | { status: 'exists' | 'missing' | 'deleted' }
  | { status: 'token-taken'; holder: string }

/** One account of an import: its config, and whether the farm made its token. */
export interface ImportItem {
  account: AccountConfig
  /** The token was made by the farm: an existing account keeps the token it has. */
  generatedToken: boolean
}

export type ImportOutcome = 'created' | 'updated' | 'unchanged' | 'exists' | 'deleted' | 'token-taken' | 'conflict'

/** One account an import writes: its place in the batch, the record it replaces ('' none) and the new one. */
interface ImportWrite {
  index: number
  expected: string
  record: AccountRecord
  previous: AccountRecord | undefined
}

interface PendingLoad {
  promise: Promise<LoadedAccount | undefined>
  /** An invalidation arrived while it was read: the answer is used once, not cached. */
  stale: boolean
}

/**
 * The farm's accounts, one record per account in its own hash slot, shared by
 * every worker through Redis. A worker holds the pinned accounts (parents,
 * peers, route carriers) and a bounded cache of the others it is using,
 * loaded on a miss in one round trip; never all of them. Every write
 * publishes the changed ids on `accounts:changed`, and appends them to the
 * `accounts:changes` stream first, so a worker whose subscriber reconnects
 * replays what it missed (or drops its cache when it missed too much).
 * Tokens are kept only as SHA-256 digests; `{tok:<digest>}` finds a token's
 * account in one read.
 */
export class AccountRegistry implements AccountDirectory {
  private readonly pinned = new Map<string, LoadedAccount>()
  /** Loaded accounts (null: known not to exist), least recently used dropped first. */
  private readonly cache: LruMap<string, LoadedAccount | null>
  private readonly loading = new Map<string, PendingLoad>()
  /** token digest (hex) → account id; checked against the account's own digest on each use. */
  private readonly tokens: LruMap<string, string>
  private readonly listeners = new Set<(id: string) => void>()
  private subscriber: Subscriber | undefined
  /** The newest change stream entry this worker has seen. */
  private lastChange = '0-0'
  private closed = false

  private constructor(
    private readonly redis: RedisClient,
    readonly keys: Keys,
    private readonly log: Logger,
    cacheSize: number,
  ) {
    this.cache = new LruMap(cacheSize)
    this.tokens = new LruMap(cacheSize)
  }

  static async start(opts: AccountRegistryOptions): Promise<AccountRegistry> {
    const registry = new AccountRegistry(opts.redis, opts.keys, opts.log, opts.cacheSize ?? DEFAULT_ACCOUNT_CACHE_SIZE)
    // where the stream is now: changes from here on arrive as messages, or are replayed after a reconnect
    const newest = (await opts.redis.xrevrange(opts.keys.accountChanges, '+', '-', 'COUNT', 1))[0]
    if (newest) registry.lastChange = newest[0]
    registry.subscriber = await openSubscriber(opts.redisTarget, opts.keys.accountsChanged, {
      onMessage: (message) => registry.onMessage(message),
      onReconnect: () => void registry.catchUp().catch((err: unknown) => opts.log.warn({ err }, 'could not catch up with account changes')),
    })
    await registry.migrateLegacy()
    await registry.applyConfig(opts.configAccounts)
    await registry.loadPinned()
    return registry
  }

  /**
   * A farm from before per-account records kept every account in one hash:
   * its records move to their own keys once, in pages (one worker does it
   * under a lock; the others wait for it), and the hash is renamed
   * `accounts:migrated`, kept for a rollback. A record already written the
   * new way is not overwritten. Never on a cluster: such a farm ran on one Redis.
   */
  private async migrateLegacy(): Promise<void> {
    if (isCluster(this.redis)) return
    const legacy = this.keys.legacyAccounts
    if ((await this.redis.type(legacy)) !== 'hash') return
    const lock = `${legacy}:migrating`
    if ((await this.redis.set(lock, this.keys.prefix, 'PX', 120_000, 'NX')) === null) {
      const deadline = Date.now() + 120_000
      while ((await this.redis.type(legacy)) === 'hash' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200))
      return
    }
    let cursor = '0'
    let moved = 0
    do {
      const [next, flat] = await this.redis.hscan(legacy, cursor, 'COUNT', 1000)
      cursor = next
      const batch = this.redis.pipeline()
      for (let i = 0; i < flat.length; i += 2) {
        const id = flat[i]!
        const json = flat[i + 1]!
        const record = parseRecord(json)
        if (record === undefined) continue
        batch.set(this.keys.accountRecord(id), json, 'NX')
        const live = liveAccount(record)
        if (live !== undefined) {
          batch.zadd(this.keys.accountIds, 0, id)
          if (isPinned(live)) batch.sadd(this.keys.pinnedAccounts, id)
          if (live.incoming?.tokenHash) batch.set(this.keys.tokenIndex(live.incoming.tokenHash), id, 'NX')
        }
        moved++
      }
      await execPipeline(batch)
    } while (cursor !== '0')
    await this.redis.rename(legacy, `${legacy}:migrated`)
    await this.redis.del(lock)
    this.log.info({ accounts: moved }, 'moved the accounts to per-account records (the old hash is kept as accounts:migrated)')
  }

  // ---- reading ----

  peek(id: string): LoadedAccount | undefined {
    return this.pinned.get(id) ?? this.cache.get(id) ?? undefined
  }

  load(id: string): Promise<LoadedAccount | undefined> {
    const known = this.pinned.get(id) ?? this.cache.get(id)
    if (known !== undefined) return Promise.resolve(known ?? undefined)
    const pending = this.loading.get(id)
    if (pending) return pending.promise
    const entry: PendingLoad = { stale: false, promise: Promise.resolve(undefined) }
    entry.promise = this.readNow(id).then(
      (loaded) => {
        if (this.loading.get(id) === entry) this.loading.delete(id)
        if (!entry.stale && !this.closed) this.remember(id, loaded)
        return loaded
      },
      (err: unknown) => {
        if (this.loading.get(id) === entry) this.loading.delete(id)
        throw err
      },
    )
    this.loading.set(id, entry)
    return entry.promise
  }

  /** The account a bearer token belongs to (JSON-RPC): the token's digest → its id → the account, which must hold that digest. */
  async byToken(token: string): Promise<LoadedAccount | undefined> {
    const digest = hashToken(token)
    const cachedId = this.tokens.get(digest)
    if (cachedId !== undefined) {
      const account = await this.load(cachedId)
      if (account?.account.incoming?.tokenHash === digest) return account
      this.tokens.delete(digest)
    }
    const id = await this.redis.get(this.keys.tokenIndex(digest))
    if (id === null) return undefined
    const account = await this.load(id)
    if (account?.account.incoming?.tokenHash !== digest) return undefined
    this.tokens.set(digest, id)
    return account
  }

  /** The accounts every worker keeps loaded (parents, peers, route carriers): CCP and the routing table read these. */
  pinnedAccounts(): IterableIterator<LoadedAccount> {
    return this.pinned.values()
  }

  /** The stored record, read now (not from the cache): for the admin API. */
  async record(id: string): Promise<AccountRecord | undefined> {
    const json = await this.redis.get(this.keys.accountRecord(id))
    return json === null ? undefined : parseRecord(json)
  }

  /**
   * One page of the live accounts in id order, after `cursor` (an id; none:
   * from the start). `next` is the cursor of the following page, or
   * undefined on the last.
   */
  async list(cursor: string | undefined, limit: number): Promise<{ accounts: LoadedAccount[]; next: string | undefined }> {
    const ids = await this.redis.zrangebylex(this.keys.accountIds, cursor ? `(${cursor}` : '-', '+', 'LIMIT', 0, limit)
    const loaded = await Promise.all(ids.map((id) => this.readNow(id)))
    const accounts = loaded.filter((a): a is LoadedAccount => a !== undefined)
    return { accounts, next: ids.length === limit ? ids[ids.length - 1] : undefined }
  }

  /** Accounts this worker holds: pinned, and cached (the cache counts known-missing ids too). */
  held(): { pinned: number; cached: number } {
    return { pinned: this.pinned.size, cached: this.cache.size }
  }

  /** How many live accounts the farm has (the id index's size). */
  async count(): Promise<number> {
    return this.redis.zcard(this.keys.accountIds)
  }

  /** Calls `listener` with the id of each account that changed (on any worker); returns the unsubscribe. */
  onChange(listener: (id: string) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  // ---- writing ----

  /**
   * Writes the config file's accounts: a config entry is (re)written when
   * Redis has no record of it or one made from a different entry; when the
   * record comes from this very entry it is kept, with whatever the admin API
   * changed since (or its deletion). An account the file no longer has is
   * not removed: hosts with an older file must not drop accounts, and an
   * account is deleted on purpose (admin API, `ilp-farm accounts remove`).
   * Idempotent: every worker does it at start.
   */
  async applyConfig(configAccounts: readonly AccountConfig[]): Promise<void> {
    for (const account of configAccounts) {
      const stored = withHashedToken(account)
      const configDigest = createHash('sha256').update(JSON.stringify(stored)).digest('hex')
      const result = await this.write(account.id, (current) =>
        current?.configDigest === configDigest ? undefined : { account: stored, origin: 'config', configDigest, updatedAt: Date.now() },
      )
      if (result.status === 'token-taken') this.log.error({ accountId: account.id, holder: result.holder }, 'config account not written: its token is another account\'s')
    }
  }

  /**
   * Creates an account (its token plain or hashed: only the hash is stored).
   * 'exists' when the id is live; 'deleted' when it belonged to a deleted
   * account, unless `reuseDeletedId` (the operator's explicit choice: the new
   * holder takes over what is still recorded under the id, its balance).
   */
  async create(account: AccountConfig, origin: AccountOrigin, opts: { reuseDeletedId?: boolean } = {}): Promise<WriteResult> {
    const stored = withHashedToken(account)
    let refusal: 'exists' | 'deleted' | undefined
    const result = await this.write(account.id, (current) => {
      refusal = current === undefined ? undefined : current.deleted !== true ? 'exists' : opts.reuseDeletedId === true ? undefined : 'deleted'
      if (refusal) return undefined
      return { account: stored, origin, ...(current?.configDigest ? { configDigest: current.configDigest } : {}), updatedAt: Date.now() }
    })
    return refusal ? { status: refusal } : result
  }

  /** Replaces a live account's config (origin and config digest kept); 'missing' when there is none. */
  async update(account: AccountConfig): Promise<WriteResult> {
    const stored = withHashedToken(account)
    let missing = false
    const result = await this.write(account.id, (current) => {
      missing = liveAccount(current) === undefined
      return missing ? undefined : { ...current!, account: stored, updatedAt: Date.now() }
    })
    return missing ? { status: 'missing' } : result
  }

  /**
   * Deletes an account: its record becomes a tombstone and its RPC URL is
   * cleared; its balance stays in Redis (money is never dropped). The deleted
   * config, or undefined when there was none.
   */
  async remove(id: string): Promise<AccountConfig | undefined> {
    let removed: AccountConfig | undefined
    await this.write(id, (current) => {
      removed = liveAccount(current)
      if (removed === undefined) return undefined
      const now = Date.now()
      return { origin: current!.origin, ...(current!.configDigest ? { configDigest: current!.configDigest } : {}), deleted: true, deletedAt: now, updatedAt: now }
    })
    return removed
  }

  /** Sets (null: clears) a live account's RPC URL; every worker sees it within a round trip. False: no such account. */
  async setRpcUrl(id: string, url: string | null): Promise<boolean> {
    const streamId = await this.appendChange([id])
    const message = `${streamId} ${id}`
    const done = await SET_RPC_URL.run(this.redis, [this.keys.accountRecord(id), this.keys.rpcUrl(id)], [url ?? '', this.scriptChannel(), message])
    if (Number(done) === 1) await this.publishAfterScript(message)
    this.invalidate(id)
    return Number(done) === 1
  }

  /**
   * Writes many accounts at once (bulk import), a few round trips per batch
   * whatever its size: new ids are created; an identical account is left as
   * it is; a different one under a live id is 'exists' unless `update`; a
   * deleted id is 'deleted'. One change message for the whole batch.
   */
  async importMany(items: readonly ImportItem[], opts: { update: boolean; origin: AccountOrigin }): Promise<ImportOutcome[]> {
    const outcomes: ImportOutcome[] = new Array<ImportOutcome>(items.length)
    const currentJson = await this.getMany(items.map((item) => this.keys.accountRecord(item.account.id)))
    const writes: ImportWrite[] = []
    const seen = new Set<string>()
    items.forEach((item, index) => {
      const expected = typeof currentJson[index] === 'string' ? (currentJson[index] as string) : ''
      const current = expected === '' ? undefined : parseRecord(expected)
      const id = item.account.id
      if (seen.has(id)) {
        outcomes[index] = 'conflict'
        return
      }
      seen.add(id)
      if (current?.deleted === true) {
        outcomes[index] = 'deleted'
        return
      }
      let stored = withHashedToken(item.account)
      const live = liveAccount(current)
      if (live !== undefined) {
        // a line without a token keeps the account's token: re-running a file changes nothing
        if (item.generatedToken && live.incoming?.tokenHash && stored.incoming) stored = { ...stored, incoming: { ...stored.incoming, tokenHash: live.incoming.tokenHash } }
        if (JSON.stringify(live) === JSON.stringify(stored)) {
          outcomes[index] = 'unchanged'
          return
        }
        if (!opts.update) {
          outcomes[index] = 'exists'
          return
        }
        writes.push({ index, expected, previous: current, record: { ...current!, account: stored, updatedAt: Date.now() } })
      } else {
        writes.push({ index, expected, previous: current, record: { account: stored, origin: opts.origin, updatedAt: Date.now() } })
      }
    })
    if (writes.length === 0) return outcomes

    // the indexes first (a superset is harmless: every reader checks the record), then the records
    const withToken = writes.filter((w) => w.record.account!.incoming?.tokenHash !== undefined)
    const claimed = await this.setManyIfNew(withToken.map((w) => [this.keys.tokenIndex(w.record.account!.incoming!.tokenHash!), w.record.account!.id]))
    const taken = new Set<ImportWrite>()
    for (const [i, w] of withToken.entries()) {
      // the digest already points somewhere: this account, a stale entry, or another account that holds the token
      if (!claimed[i] && (await this.claimToken(w.record.account!.incoming!.tokenHash!, w.record.account!.id)) !== undefined) taken.add(w)
    }
    const accepted = writes.filter((w) => {
      if (taken.has(w)) outcomes[w.index] = 'token-taken'
      return !taken.has(w)
    })
    if (accepted.length === 0) return outcomes
    const indexes = this.redis.pipeline()
    indexes.zadd(this.keys.accountIds, ...accepted.flatMap((w) => [0, w.record.account!.id]))
    const pins = accepted.filter((w) => isPinned(w.record.account!)).map((w) => w.record.account!.id)
    if (pins.length > 0) indexes.sadd(this.keys.pinnedAccounts, ...pins)
    await execPipeline(indexes)
    const tokens = accepted.map((w) => changeToken(w.record.account!.id, w.previous, w.record))
    const streamId = await this.appendChange(tokens)
    // a new id is a plain set-if-absent (a compare-and-set from nothing); a changed one goes through the script
    const created = accepted.filter((w) => w.expected === '')
    const changed = accepted.filter((w) => w.expected !== '')
    const createdOk = await this.setManyIfNew(created.map((w) => [this.keys.accountRecord(w.record.account!.id), JSON.stringify(w.record)]))
    const changedOk = await SWAP.runMany(
      this.redis,
      changed.map((w) => {
        const id = w.record.account!.id
        return { keys: [this.keys.accountRecord(id), this.keys.rpcUrl(id)], args: [w.expected, JSON.stringify(w.record), '0', '', ''] }
      }),
    )
    const written = new Map<ImportWrite, boolean>([
      ...created.map((w, i): [ImportWrite, boolean] => [w, createdOk[i]!]),
      ...changed.map((w, i): [ImportWrite, boolean] => [w, Number(changedOk[i]) === 1]),
    ])
    const released: Array<[string, string]> = []
    accepted.forEach((w) => {
      if (!written.get(w)) {
        outcomes[w.index] = 'conflict'
        return
      }
      outcomes[w.index] = w.previous === undefined ? 'created' : 'updated'
      const oldHash = liveAccount(w.previous)?.incoming?.tokenHash
      if (oldHash !== undefined && oldHash !== w.record.account!.incoming?.tokenHash) released.push([oldHash, w.record.account!.id])
    })
    await publish(this.redis, this.keys.accountsChanged, `${streamId} ${tokens.join(' ')}`)
    for (const w of accepted) this.invalidate(w.record.account!.id)
    await RELEASE_TOKEN.runMany(this.redis, released.map(([hash, id]) => ({ keys: [this.keys.tokenIndex(hash)], args: [id] })))
    return outcomes
  }

  async close(): Promise<void> {
    this.closed = true
    const subscriber = this.subscriber
    this.subscriber = undefined
    await subscriber?.close()
  }

  // ---- internals ----

  /**
   * The change channel for a script that writes one account: on one Redis the
   * script publishes itself, in the same step as its write; on a cluster ''
   * (the channel is not in the account's slot) and the writer publishes right
   * after, before it answers (publishAfterScript).
   */
  private scriptChannel(): string {
    return isCluster(this.redis) ? '' : this.keys.accountsChanged
  }

  private async publishAfterScript(message: string): Promise<void> {
    if (isCluster(this.redis)) await publish(this.redis, this.keys.accountsChanged, message)
  }

  /**
   * Read, decide, write-if-unchanged, until the write lands. `decide` gets
   * the current record and returns the new one, or undefined to leave it.
   * The token index, id index and pinned set are added to before the record
   * is written and pruned after, so they always hold at least what the
   * records say; readers check the record itself.
   */
  private async write(id: string, decide: (current: AccountRecord | undefined) => AccountRecord | undefined): Promise<WriteResult> {
    for (;;) {
      const expected = (await this.redis.get(this.keys.accountRecord(id))) ?? ''
      const current = expected === '' ? undefined : parseRecord(expected)
      const next = decide(current)
      if (next === undefined) {
        const live = liveAccount(current)
        return live ? { status: 'unchanged', account: live } : { status: 'missing' }
      }
      const before = liveAccount(current)
      const after = liveAccount(next)
      const newHash = after?.incoming?.tokenHash
      if (newHash !== undefined) {
        const holder = await this.claimToken(newHash, id)
        if (holder !== undefined) return { status: 'token-taken', holder }
      }
      if (after !== undefined) {
        const indexes = this.redis.pipeline().zadd(this.keys.accountIds, 0, id)
        if (isPinned(after)) indexes.sadd(this.keys.pinnedAccounts, id)
        await execPipeline(indexes)
      }
      const token = changeToken(id, current, next)
      const streamId = await this.appendChange([token])
      const swapped = await SWAP.run(
        this.redis,
        [this.keys.accountRecord(id), this.keys.rpcUrl(id)],
        [expected, JSON.stringify(next), after === undefined ? '1' : '0', this.scriptChannel(), `${streamId} ${token}`],
      )
      if (Number(swapped) !== 1) continue
      await this.publishAfterScript(`${streamId} ${token}`)
      const prune = this.redis.pipeline()
      if (after === undefined) prune.zrem(this.keys.accountIds, id)
      if (after === undefined || !isPinned(after)) prune.srem(this.keys.pinnedAccounts, id)
      await execPipeline(prune)
      const oldHash = before?.incoming?.tokenHash
      if (oldHash !== undefined && oldHash !== newHash) await RELEASE_TOKEN.run(this.redis, [this.keys.tokenIndex(oldHash)], [id])
      // this worker sees its own change before it answers
      this.invalidate(id)
      if (after !== undefined && isPinned(after)) await this.reloadPinned(id)
      return after ? { status: 'written', account: after, previous: current } : { status: 'missing' }
    }
  }

  /**
   * Values of many keys, in chunks of one MGET each; on a cluster (keys of
   * many accounts span hash slots) one GET each, which the client
   * auto-pipelines into one round trip per master.
   */
  private async getMany(keys: readonly string[]): Promise<Array<string | null>> {
    if (isCluster(this.redis)) {
      const redis = this.redis
      return Promise.all(keys.map((k) => redis.get(k)))
    }
    const chunks: Array<Promise<Array<string | null>>> = []
    for (let i = 0; i < keys.length; i += MANY_KEYS) {
      const chunk = keys.slice(i, i + MANY_KEYS)
      chunks.push(this.redis.mget(...chunk).catch(async () => (await pipelined(this.redis, chunk.map((k): Command => ['get', k]))) as Array<string | null>))
    }
    return (await Promise.all(chunks)).flat()
  }

  /**
   * Sets each key that does not exist; true for each one set. A chunk goes as
   * one MSETNX (all or nothing); only when some key of it exists after all (a
   * write raced this one) are its keys tried one by one. On a cluster one
   * SET NX each (auto-pipelined per master).
   */
  private async setManyIfNew(pairs: ReadonlyArray<readonly [string, string]>): Promise<boolean[]> {
    if (isCluster(this.redis)) {
      const redis = this.redis
      return Promise.all(pairs.map(async ([key, value]) => (await redis.set(key, value, 'NX')) === 'OK'))
    }
    const out: boolean[] = []
    for (let i = 0; i < pairs.length; i += MANY_KEYS) {
      const chunk = pairs.slice(i, i + MANY_KEYS)
      const all = await this.redis.msetnx(...chunk.flat()).catch(() => 0) // refused across slots: one by one
      if (Number(all) === 1) {
        out.push(...chunk.map(() => true))
        continue
      }
      const one = await pipelined(this.redis, chunk.map(([key, value]): Command => ['set', key, value, 'NX']))
      out.push(...one.map((r) => r === 'OK'))
    }
    return out
  }

  /** undefined when the digest now points at `id`; else the live account that holds the token. */
  private async claimToken(hash: string, id: string): Promise<string | undefined> {
    const key = this.keys.tokenIndex(hash)
    const holder = String(await CLAIM_TOKEN.run(this.redis, [key], [id, '0']))
    if (holder === '') return undefined
    // the index may be stale: the holder was deleted or changed its token since
    const record = await this.record(holder)
    if (liveAccount(record)?.incoming?.tokenHash === hash) return holder
    await CLAIM_TOKEN.run(this.redis, [key], [id, '1'])
    return undefined
  }

  /**
   * Appends a change to the stream, at most CHANGE_ENTRY_IDS ids an entry (so
   * the capped stream's size is bounded in ids, not only in entries); the last
   * entry's id goes into the message, so workers know how far they got.
   */
  private async appendChange(tokens: readonly string[]): Promise<string> {
    const commands: Command[] = []
    for (let i = 0; i < tokens.length; i += CHANGE_ENTRY_IDS) {
      commands.push(['xadd', this.keys.accountChanges, 'MAXLEN', '~', CHANGES_KEPT, '*', 'ids', tokens.slice(i, i + CHANGE_ENTRY_IDS).join(' ')])
    }
    const ids = await pipelined(this.redis, commands)
    return ids[ids.length - 1] as string
  }

  /** Reads one account now, not from the cache: its record and RPC URL in one round trip (one hash slot). */
  async readNow(id: string): Promise<LoadedAccount | undefined> {
    const [json, rpcUrl] = await this.redis.mget(this.keys.accountRecord(id), this.keys.rpcUrl(id))
    const record = json == null ? undefined : parseRecord(json)
    const stored = liveAccount(record)
    if (stored === undefined) return undefined
    const parsed = parseAccount(stored)
    if ('problems' in parsed) {
      this.log.error({ accountId: id, problems: parsed.problems }, 'ignoring an invalid account record in Redis')
      return undefined
    }
    const hash = parsed.account.incoming?.tokenHash
    return {
      account: parsed.account,
      origin: record!.origin,
      tokenDigest: hash === undefined ? undefined : Buffer.from(hash, 'hex'),
      rpcUrl: rpcUrl ?? undefined,
    }
  }

  private remember(id: string, loaded: LoadedAccount | undefined): void {
    if (loaded !== undefined && isPinned(loaded.account)) {
      this.pinned.set(id, loaded)
      this.cache.delete(id)
    } else {
      this.pinned.delete(id)
      this.cache.set(id, loaded ?? null)
    }
  }

  /** Loads the pinned set (at start, and after the cache was dropped). */
  private async loadPinned(): Promise<void> {
    const ids = await this.redis.smembers(this.keys.pinnedAccounts)
    const loaded = await Promise.all(ids.map((id) => this.readNow(id)))
    const keep = new Set<string>()
    ids.forEach((id, i) => {
      const account = loaded[i]
      if (account !== undefined && isPinned(account.account)) {
        this.pinned.set(id, account)
        keep.add(id)
      }
    })
    for (const id of [...this.pinned.keys()]) if (!keep.has(id)) this.pinned.delete(id)
  }

  private async reloadPinned(id: string): Promise<void> {
    const loaded = await this.readNow(id)
    if (loaded !== undefined && isPinned(loaded.account)) this.pinned.set(id, loaded)
    else this.pinned.delete(id)
    this.notify(id)
  }

  /** Forgets what this worker knows of `id`: the next use reads it again. */
  private invalidate(id: string): void {
    this.cache.delete(id)
    const pending = this.loading.get(id)
    if (pending) {
      pending.stale = true
      this.loading.delete(id)
    }
    this.notify(id)
  }

  private notify(id: string): void {
    for (const listener of this.listeners) {
      try {
        listener(id)
      } catch (err) {
        this.log.error({ err }, 'account change listener failed')
      }
    }
  }

  private onMessage(message: string): void {
    if (this.closed) return
    if (message === '*') {
      void this.dropAll()
      return
    }
    const [streamId, ...tokens] = message.split(' ')
    if (streamId !== undefined && compareStreamIds(streamId, this.lastChange) > 0) this.lastChange = streamId
    this.applyTokens(tokens)
  }

  private applyTokens(tokens: readonly string[]): void {
    for (const token of tokens) {
      const pinned = token.startsWith(PIN_MARK)
      const id = pinned ? token.slice(1) : token
      if (id === '') continue
      const wasPinned = this.pinned.has(id)
      this.invalidate(id)
      if (pinned || wasPinned) void this.reloadPinned(id).catch((err: unknown) => this.log.warn({ err, accountId: id }, 'could not re-read a changed account'))
    }
  }

  /**
   * After the subscriber reconnected: replays the changes since the last one
   * seen, or drops the whole cache when the stream no longer reaches back
   * that far or there are too many.
   */
  private async catchUp(): Promise<void> {
    if (this.closed) return
    const from = this.lastChange
    const entries = await this.redis.xrange(this.keys.accountChanges, `(${from}`, '+', 'COUNT', CATCH_UP_LIMIT)
    const oldest = (await this.redis.xrange(this.keys.accountChanges, '-', '+', 'COUNT', 1))[0]?.[0]
    const trimmed = oldest !== undefined && compareStreamIds(oldest, from) > 0 && (from !== '0-0' || (await this.redis.xlen(this.keys.accountChanges)) >= CHANGES_KEPT)
    if (entries.length >= CATCH_UP_LIMIT || trimmed) {
      this.log.info('missed too many account changes while disconnected: dropping the account cache')
      await this.dropAll()
      const newest = (await this.redis.xrevrange(this.keys.accountChanges, '+', '-', 'COUNT', 1))[0]
      if (newest) this.lastChange = newest[0]
      return
    }
    for (const [entryId, fields] of entries) {
      const ids = fields[fields.indexOf('ids') + 1] ?? ''
      this.applyTokens(ids.split(' '))
      this.lastChange = entryId
    }
  }

  private async dropAll(): Promise<void> {
    const ids = [...this.cache.keys(), ...this.pinned.keys()]
    this.cache.clear()
    this.tokens.clear()
    for (const pending of this.loading.values()) pending.stale = true
    this.loading.clear()
    await this.loadPinned()
    for (const id of ids) this.notify(id)
  }
}

/** `id`, marked when the account is or was pinned: every worker then loads it at once. */
function changeToken(id: string, before: AccountRecord | undefined, after: AccountRecord): string {
  const a = liveAccount(before)
  const b = liveAccount(after)
  return (a && isPinned(a)) || (b && isPinned(b)) ? `${PIN_MARK}${id}` : id
}

function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint]
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint]
  return am === bm ? (as === bs ? 0 : as > bs ? 1 : -1) : am > bm ? 1 : -1
}

type Command = [string, ...Array<string | number>]

/**
 * Runs commands in one pipeline; each result, or throws the first error. On a
 * cluster, where one pipeline may not span slots, each command on its own
 * (auto-pipelined per master).
 */
async function pipelined(redis: RedisClient, commands: Command[]): Promise<unknown[]> {
  if (commands.length === 0) return []
  if (isCluster(redis)) return Promise.all(commands.map(([name, ...args]) => redis.call(name, ...args)))
  return execPipeline(redis.pipeline(commands))
}

/** A pipeline's results, or the first error; on a cluster its keys must share one slot (the {farm} indexes do). */
async function execPipeline(pipeline: ReturnType<RedisClient['pipeline']>): Promise<unknown[]> {
  const results = (await pipeline.exec()) ?? []
  return results.map(([err, value]) => {
    if (err) throw err
    return value
  })
}
