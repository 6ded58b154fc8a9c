import { createHash, randomBytes } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { parseAccount } from '../config/load.js'
import type { AccountConfig } from '../config/schema.js'
import type { Keys } from '../store/keys.js'
import { LuaScript } from '../store/lua-script.js'

/** Who made an account: the config file, the admin API, a redeemed ticket, an open sign-up. */
export type AccountOrigin = 'config' | 'admin' | 'ticket' | 'signup'

/**
 * One account as stored in Redis (`<prefix>accounts`, field = id): its config
 * with the token replaced by its SHA-256, who made it, and for accounts that
 * came from the config file the digest of that file entry. A config account
 * deleted at runtime stays as a tombstone (`deleted`), so a worker restarting
 * with the same file does not bring it back.
 */
export interface AccountRecord {
  account?: AccountConfig
  origin: AccountOrigin
  configDigest?: string
  deleted?: true
  updatedAt: number
}

export interface AccountChange {
  id: string
  before: AccountConfig | undefined
  after: AccountConfig | undefined
}

/** SHA-256 of a token as 64 hex digits: what the farm keeps instead of the token. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex')
}

/** A fresh bearer token: 256 random bits, URL-safe. */
export function newToken(): string {
  return randomBytes(32).toString('base64url')
}

/** The account as it is stored: `incoming.token` replaced by `incoming.tokenHash`. */
export function withHashedToken(account: AccountConfig): AccountConfig {
  if (account.incoming?.token === undefined) return account
  const { token, ...incoming } = account.incoming
  return { ...account, incoming: { ...incoming, tokenHash: hashToken(token) } }
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

/** How often each worker re-reads every account, in case a change message was missed. */
export const ACCOUNTS_RELOAD_MS = 10_000

const SWAP = new LuaScript('accounts/swap.lua')

export interface AccountRegistryOptions {
  redis: Redis
  /** For the subscriber connection (a subscribed connection can run no other command). */
  redisUrl: string
  keys: Keys
  /** The config file's accounts: written into Redis at start (see applyConfig). */
  configAccounts: readonly AccountConfig[]
  log: Logger
  reloadIntervalMs?: number
}

/**
 * The farm's accounts, shared by every worker through Redis (issue 6):
 * `accounts` is a live map, changed in place when any worker creates,
 * updates or deletes an account (a compare-and-set script publishes the id
 * on `accounts:changed`; each worker re-reads it, so a change reaches every
 * worker within a round trip or two). Tokens are kept only as SHA-256
 * digests, in Redis and in memory.
 */
export class AccountRegistry {
  readonly accounts = new Map<string, AccountConfig>()
  private readonly records = new Map<string, string>()
  private readonly origins = new Map<string, AccountOrigin>()
  private readonly digests = new Map<string, Buffer>()
  /** token digest (hex) → account; a digest two accounts share is in neither (ambiguous). */
  private byDigest = new Map<string, AccountConfig>()
  private sharedTokens = 0
  private readonly listeners = new Set<(change: AccountChange) => void>()
  private subscriber: Redis | undefined
  private timer: NodeJS.Timeout | undefined

  private constructor(
    private readonly redis: Redis,
    private readonly keys: Keys,
    private readonly log: Logger,
  ) {}

  static async start(opts: AccountRegistryOptions): Promise<AccountRegistry> {
    const registry = new AccountRegistry(opts.redis, opts.keys, opts.log)
    const subscriber = new Redis(opts.redisUrl, { lazyConnect: true, retryStrategy: (times) => Math.min(times * 100, 1000) })
    subscriber.on('error', () => {
      // ioredis reconnects and resubscribes; the accounts are re-read whole once it is back
    })
    subscriber.on('message', (_channel: string, message: string) => {
      const reload = message === '*' ? registry.reloadAll() : registry.reload(message)
      reload.catch((err: unknown) => opts.log.warn({ err }, 'could not re-read a changed account'))
    })
    let connectedOnce = false
    subscriber.on('ready', () => {
      if (connectedOnce) registry.reloadAll().catch((err: unknown) => opts.log.warn({ err }, 'could not re-read the accounts'))
      connectedOnce = true
    })
    await subscriber.connect()
    await subscriber.subscribe(opts.keys.accountsChanged)
    registry.subscriber = subscriber
    await registry.applyConfig(opts.configAccounts)
    await registry.reloadAll()
    registry.timer = setInterval(() => {
      registry.reloadAll().catch((err: unknown) => opts.log.warn({ err }, 'could not re-read the accounts'))
    }, opts.reloadIntervalMs ?? ACCOUNTS_RELOAD_MS)
    registry.timer.unref()
    return registry
  }

  get(id: string): AccountConfig | undefined {
    return this.accounts.get(id)
  }

  origin(id: string): AccountOrigin | undefined {
    return this.origins.get(id)
  }

  /** SHA-256 of the account's token (ILP-over-HTTP, callbacks), or undefined without incoming. */
  tokenDigest(id: string): Buffer | undefined {
    return this.digests.get(id)
  }

  /** The account a bearer token belongs to (JSON-RPC), looked up by the token's digest. */
  accountByToken(token: string): AccountConfig | undefined {
    return this.byDigest.get(hashToken(token))
  }

  /** Calls `listener` after each change of an account on this worker; returns the unsubscribe. */
  onChange(listener: (change: AccountChange) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

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
      const record: AccountRecord = { account: stored, origin: 'config', configDigest, updatedAt: Date.now() }
      await this.compareAndSet(account.id, (current) => (current?.configDigest === configDigest ? undefined : record))
    }
  }

  /**
   * Creates an account (its token already hashed or plain: only the hash is
   * stored). 'exists' when the id is taken. Over the tombstone of a deleted
   * config account, the new record keeps its config digest, so a restart
   * does not put the file's version back.
   */
  async create(account: AccountConfig, origin: AccountOrigin): Promise<AccountConfig | 'exists'> {
    const stored = withHashedToken(account)
    let exists = false
    await this.compareAndSet(account.id, (current) => {
      exists = current !== undefined && !current.deleted
      if (exists) return undefined
      return { account: stored, origin, ...(current?.configDigest ? { configDigest: current.configDigest } : {}), updatedAt: Date.now() }
    })
    return exists ? 'exists' : (this.accounts.get(account.id) ?? stored)
  }

  /** Replaces an account's config (origin and config digest kept); 'missing' when there is none. */
  async update(account: AccountConfig): Promise<AccountConfig | 'missing'> {
    const stored = withHashedToken(account)
    let missing = false
    await this.compareAndSet(account.id, (current) => {
      if (current === undefined || current.deleted === true) {
        missing = true
        return undefined
      }
      return { ...current, account: stored, updatedAt: Date.now() }
    })
    return missing ? 'missing' : (this.accounts.get(account.id) ?? stored)
  }

  /** Deletes an account (its balance stays in Redis); the deleted config, or undefined when there was none. */
  async remove(id: string): Promise<AccountConfig | undefined> {
    let removed: AccountConfig | undefined
    await this.compareAndSet(id, (current) => {
      removed = current && !current.deleted ? current.account : undefined
      if (!current || current.deleted) return undefined
      if (!current.configDigest) return null
      return { origin: current.origin, configDigest: current.configDigest, deleted: true, updatedAt: Date.now() }
    })
    return removed
  }

  /** Re-reads every account (at start, after a reconnect, on `*`, and every reloadIntervalMs). */
  async reloadAll(): Promise<void> {
    const all = await this.redis.hgetall(this.keys.accounts)
    for (const id of [...this.records.keys()]) if (!(id in all)) this.apply(id, undefined)
    for (const [id, json] of Object.entries(all)) this.apply(id, json)
  }

  /** Re-reads one account (its id was published on `accounts:changed`). */
  async reload(id: string): Promise<void> {
    this.apply(id, (await this.redis.hget(this.keys.accounts, id)) ?? undefined)
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    const subscriber = this.subscriber
    this.subscriber = undefined
    if (subscriber) {
      await subscriber.quit().catch(() => undefined)
      subscriber.disconnect()
    }
  }

  /**
   * Read, decide, write-if-unchanged, until the write lands. `decide` gets
   * the current record and returns the new one, null to remove the field,
   * or undefined to leave it as it is.
   */
  private async compareAndSet(id: string, decide: (current: AccountRecord | undefined) => AccountRecord | null | undefined): Promise<void> {
    for (;;) {
      const json = (await this.redis.hget(this.keys.accounts, id)) ?? ''
      const next = decide(json === '' ? undefined : parseRecord(json))
      if (next === undefined) return
      const nextJson = next === null ? '' : JSON.stringify(next)
      if (await this.swap(id, json, nextJson)) {
        this.apply(id, nextJson === '' ? undefined : nextJson) // this worker sees its own change before it answers
        return
      }
    }
  }

  private async swap(id: string, expected: string, next: string): Promise<boolean> {
    const done = await SWAP.run(this.redis, [this.keys.accounts], [id, expected, next, this.keys.accountsChanged])
    return Number(done) === 1
  }

  /** Makes the in-memory account match its record (undefined: none). */
  private apply(id: string, json: string | undefined): void {
    if (json === this.records.get(id)) return
    const before = this.accounts.get(id)
    const record = json === undefined ? undefined : parseRecord(json)
    let after: AccountConfig | undefined
    if (record?.account && !record.deleted) {
      const parsed = parseAccount(record.account)
      if ('problems' in parsed) {
        this.log.error({ accountId: id, problems: parsed.problems }, 'ignoring an invalid account record in Redis')
      } else {
        after = parsed.account
      }
    }
    if (json === undefined) this.records.delete(id)
    else this.records.set(id, json)
    if (after) {
      this.accounts.set(id, after)
      this.origins.set(id, record!.origin)
    } else {
      this.accounts.delete(id)
      this.origins.delete(id)
    }
    if (before === undefined && after === undefined) return
    this.reindexTokens()
    for (const listener of this.listeners) listener({ id, before, after })
  }

  private reindexTokens(): void {
    this.digests.clear()
    const byDigest = new Map<string, AccountConfig>()
    const shared = new Set<string>()
    for (const account of this.accounts.values()) {
      const hash = account.incoming?.tokenHash
      if (hash === undefined) continue
      this.digests.set(account.id, Buffer.from(hash, 'hex'))
      if (byDigest.has(hash)) shared.add(hash)
      byDigest.set(hash, account)
    }
    for (const hash of shared) byDigest.delete(hash)
    if (shared.size > this.sharedTokens) this.log.warn('some accounts share a token: those tokens are refused at /rpc')
    this.sharedTokens = shared.size
    this.byDigest = byDigest
  }
}
