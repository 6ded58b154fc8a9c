import { randomBytes } from 'node:crypto'
import { Command } from 'ioredis'
import { Keys } from './keys.js'
import { CallBatcher } from './batcher.js'
import { OwnPackets, type OwnReservation } from './own-packets.js'
import { waitForReplica } from './durability.js'
import { callWithFunctionRetry, ensureFunctionsLoaded } from './functions.js'
import { isCluster, type RedisClient } from './redis.js'
import { functionLibrary, type Operation, OPERATION_CODES } from './scripts.js'

export type PrepareOutcome =
  | 'ok'
  | 'duplicate'
  | 'insufficient-balance'
  | 'exceeds-max-balance'
  | 'expired'
  | 'too-many-in-flight'
  | 'rate-limited'
  | 'throughput-exceeded'

/** The incoming account's sending limits, farm-wide (unset: none). */
export interface SendingLimits {
  maxInFlight?: number | undefined
  maxPacketsPerSecond?: number | undefined
  /** In the incoming account's units (a decimal string). */
  maxAmountPerSecond?: string | undefined
}
export type ResolveOutcome = 'ok' | 'gone'

export interface Reservation {
  incomingAccount: string
  packetId: string
  shard: number
  inAmount: string
  outgoingAccount: string
  outAmount: string
  expiresAtMs: number
  /** Incoming account's minBalance; undefined means no lower limit. */
  minBalance: string | undefined
  /** Outgoing account's maxBalance; undefined means no upper limit. */
  maxBalance: string | undefined
  /** Owner recorded in the records; default: the Ledger's bootId. */
  bootId?: string
  /** Incoming account's parallelism P: the lease a shard takes from cold is up to P x amount. Default 1. */
  parallelism?: number
  limits?: SendingLimits
}

export interface AccountBalance {
  /** cold + every shard's hot balance: positive, the farm owes the account; negative, the account owes the farm. */
  balance: string
  cold: string
  hot: Record<string, string>
  /** Headroom reserved against maxBalance by packets in flight towards this account. */
  creditsInFlight: string
}

/** A packet in flight: its incoming record (lua/lib/entry.lua). */
export interface HotSetEntry {
  incomingAccount: string
  packetId: string
  /** Worker slot whose hot balance a refund goes back to. */
  shard: number
  /** Boot id of the worker process that owns the packet. */
  bootId: string
  /** The reservation's own name, unique per owner. */
  attempt: string
  expiresAtMs: number
  inAmount: string
  outgoingAccount: string
  outAmount: string
}

/** A packet's outgoing record: the credit (or release) the next hop waits for. */
export interface PendingCredit {
  incomingAccount: string
  packetId: string
  outgoingAccount: string
  bootId: string
  attempt: string
  expiresAtMs: number
  outAmount: string
  /** What the record reserves against the next hop's maxBalance ('0' for none). */
  headroom: string
}

const PREPARE_OUTCOMES: Record<string, PrepareOutcome> = {
  OK: 'ok',
  DUPLICATE: 'duplicate',
  INSUFFICIENT_BALANCE: 'insufficient-balance',
  EXCEEDS_MAX_BALANCE: 'exceeds-max-balance',
  EXPIRED: 'expired',
  TOO_MANY_IN_FLIGHT: 'too-many-in-flight',
  RATE_LIMITED: 'rate-limited',
  THROUGHPUT_EXCEEDED: 'throughput-exceeded',
}

/** The boot id of a worker process: `<shard>-<random>`, new at every start. */
export function newBootId(shard: number | string): string {
  return `${shard}-${randomBytes(6).toString('hex')}`
}

const BOOT_ID = /^[A-Za-z0-9_.:-]{1,100}$/

/** An incoming record from its account, field and value (lua/lib/entry.lua has the format). */
export function parseIncomingRecord(incomingAccount: string, packetId: string, value: string): HotSetEntry | undefined {
  const parts = value.split('|')
  if (parts.length !== 7) return undefined
  const [shard, bootId, attempt, expiresAt, inAmount, outgoingAccount, outAmount] = parts as [string, string, string, string, string, string, string]
  return { incomingAccount, packetId, shard: Number(shard), bootId, attempt, expiresAtMs: Number(expiresAt), inAmount, outgoingAccount, outAmount }
}

/** An outgoing record from its account, field (`<incoming account>|<packet id>`) and value. */
export function parseOutgoingRecord(outgoingAccount: string, field: string, value: string): PendingCredit | undefined {
  const sep = field.indexOf('|')
  const parts = value.split('|')
  if (sep < 0 || parts.length !== 5) return undefined
  const [bootId, attempt, expiresAt, outAmount, headroom] = parts as [string, string, string, string, string]
  return { incomingAccount: field.slice(0, sep), packetId: field.slice(sep + 1), outgoingAccount, bootId, attempt, expiresAtMs: Number(expiresAt), outAmount, headroom }
}

/** What names one reservation's records: its packet, its two accounts, its owner and attempt. */
export type RecordRef = Pick<PendingCredit, 'incomingAccount' | 'packetId' | 'outgoingAccount' | 'bootId' | 'attempt'>

/** The record values of a packet, as the scripts write them (for tools that plant records, and tests). */
export function incomingRecordValue(e: Omit<HotSetEntry, 'incomingAccount' | 'packetId'>): string {
  return [e.shard, e.bootId, e.attempt, e.expiresAtMs, e.inAmount, e.outgoingAccount, e.outAmount].join('|')
}

export function outgoingRecordValue(c: Pick<PendingCredit, 'bootId' | 'attempt' | 'expiresAtMs' | 'outAmount' | 'headroom'>): string {
  return [c.bootId, c.attempt, c.expiresAtMs, c.outAmount, c.headroom].join('|')
}

/**
 * Whether a failed call may still have run in Redis: not when Redis answered
 * with an error, nor when the client refused to send it (no connection, no
 * offline queue); yes for a timeout or a connection lost with the call in flight.
 */
function mayHaveRun(err: unknown): boolean {
  if (!(err instanceof Error)) return true
  return err.name !== 'ReplyError' && !/enableOfflineQueue/.test(err.message)
}

/** One operation, queued for the next batch. */
interface Call {
  operation: Operation
  /** Its keys, in the order the operation takes them: all in one slot for a transition. */
  keys: string[]
  args: string[]
}

function resolveOutcome(result: string): ResolveOutcome {
  if (result === 'OK') return 'ok'
  if (result === 'GONE') return 'gone'
  throw new Error(`unexpected script result ${result}`)
}

/** What a refund made outside the packet's flow found: done, already settled, or too early by Redis' clock. */
export type RecordOutcome = 'ok' | 'gone' | 'early'

function recordOutcome(result: string): RecordOutcome {
  if (result === 'EARLY') return 'early'
  return resolveOutcome(result)
}

/** One pair's transfers of owed credits in this process: a run in progress, and whether it must go round again. */
interface PairTransfer {
  incomingAccount: string
  outgoingAccount: string
  running: Promise<void> | undefined
  again: boolean
}

/** The hash tag of a key (`{acct:alice}`): calls with the same tag share a slot. */
function slotTag(key: string): string {
  const open = key.indexOf('{')
  const close = key.indexOf('}', open + 1)
  return open >= 0 && close > open + 1 ? key.slice(open + 1, close) : key
}

export interface FulfillOptions {
  /**
   * On a cluster, answer once the fulfill is decided (the sender's debit is
   * final) and let the next hop's credit land after: its outgoing record, or
   * the amount owed in the incoming slot, holds it until then, the owner
   * retries a credit or transfer that failed, and the sweeper makes it
   * should the owner die. The packet path takes this: one
   * round trip less before the Fulfill goes upstream. Default: the credit is
   * waited for. No effect on one Redis, where both are one call.
   */
  creditLater?: boolean
}

export interface LedgerOptions {
  bootId?: string
  /**
   * Run each step's transitions one by one, each in its own call (as on a
   * cluster, where two accounts live in different slots) rather than chained
   * in one call. Default: split on a Redis Cluster only.
   */
  split?: boolean
  /**
   * Split: a fulfill owes the credit of a packet whose next hop has no
   * maxBalance in the incoming slot, for a transfer to move on, rather than
   * writing an outgoing record for every packet (see Ledger.owesCredits).
   * Default: split without `durability`.
   */
  owesCredits?: boolean
  /**
   * `redis.durability: replica`: every call waits until a replica has it
   * (WAIT 1, once per batch and node) before its outcome is used; a wait
   * that times out fails the calls of its batch with DurabilityError.
   */
  durability?: { timeoutMs: number }
}

/**
 * Turns of the event loop a batch of split calls collects over. Split, a
 * turn's calls go out as one FCALL per slot, each a round trip of its own to
 * its node (a write, a wake-up, a reply), for half the packets' steps each:
 * two turns make about a third fewer, for a turn's wait. Chained, the one FCALL
 * per turn carries each step whole; measured, a second turn gains nothing
 * there (docs/PERFORMANCE.md).
 */
const SPLIT_BATCH_TURNS = 2

/**
 * The balances and the packets in flight. Each transition is one Lua
 * function over the keys of one account, so Redis applies it whole or not at
 * all, in one hash slot. A packet has a record in the slot of each of its two
 * accounts (lua/lib/entry.lua), or, towards a next hop without a maxBalance,
 * its incoming record alone; the order of the transitions keeps the records
 * consistent whatever fails between them, and on a single Redis a packet's
 * step runs as one chained call, all of it or none. On a cluster such a
 * packet's fulfill owes its credit in the incoming slot, and transfers move
 * what is owed to the next hop (owesCredits).
 */
export class Ledger {
  readonly keys: Keys
  private readonly library = functionLibrary()
  private loading: Promise<void> | undefined
  /** Owner written into the records of this worker process's packets. */
  readonly bootId: string
  /** This process's own open packets and suspected orphans (see own-packets.ts). */
  readonly own = new OwnPackets()
  readonly split: boolean
  /**
   * Split, without `durability: replica`: a packet whose next hop has no
   * maxBalance is its incoming record alone, as on one Redis; its fulfill
   * owes the credit in the incoming slot, and transfers move what is owed
   * to the next hop's balance after (transfer-begin.lua). Under `replica` every
   * packet keeps its outgoing record: a retried fulfill whose first try's
   * answer was lost finds its decision there.
   */
  readonly owesCredits: boolean
  private readonly durability: { timeoutMs: number } | undefined
  /** `redis.durability: replica`: how long a write waits for a replica; undefined for `none`. */
  get durabilityTimeoutMs(): number | undefined {
    return this.durability?.timeoutMs
  }
  private attempts = 0
  /** The library was given to ensureFunctionsLoaded (which keeps it on every master from then on). */
  private loaded = false
  /** Accounts in this process's owner index (Keys.ownerAccounts), and those being added. */
  private readonly indexed = new Map<string, number>()
  private readonly indexing = new Map<string, Promise<void>>()
  /** Owners named in the owners' list (once each, before their first record). */
  private readonly registered = new Map<string, Promise<void>>()
  /** Credits owed after a fulfill on a cluster, retried until they land (a dead process leaves them to the sweeper). */
  private readonly owedCredits: RecordRef[] = []
  /** Credits a fulfill left to land after it answered (FulfillOptions.creditLater), until they do. */
  private readonly crediting = new Map<RecordRef, Promise<void>>()
  private owedTimer: NodeJS.Timeout | undefined
  /** Pairs (`<in>|<out>`) whose owed credits this process moves to the next hop, until a transfer finds nothing owed. */
  private readonly transfers = new Map<string, PairTransfer>()
  private transferTimer: NodeJS.Timeout | undefined

  constructor(
    readonly redis: RedisClient,
    keyPrefix: string,
    opts: LedgerOptions = {},
  ) {
    this.keys = new Keys(keyPrefix)
    this.bootId = opts.bootId ?? newBootId('x')
    if (!BOOT_ID.test(this.bootId)) throw new Error(`invalid boot id ${JSON.stringify(this.bootId)}`)
    this.split = opts.split ?? isCluster(redis)
    this.durability = opts.durability
    this.owesCredits = this.split && (opts.owesCredits ?? opts.durability === undefined)
    this.batcher = new CallBatcher<Call>((calls) => this.send(calls), { turns: this.split ? SPLIT_BATCH_TURNS : 1 })
  }

  /**
   * FUNCTION LOAD the scripts (idempotent; on every master of a cluster).
   * Needs Redis 7.
   */
  load(): Promise<void> {
    this.loading ??= ensureFunctionsLoaded(this.redis, this.library)
      .catch((err: Error) => {
        throw /unknown command/i.test(err.message) ? new Error(`Redis 7.0 or newer is needed (Redis Functions): ${err.message}`) : err
      })
      .finally(() => {
        this.loading = undefined
      })
    return this.loading
  }

  /** Names an owner (this process, or one a reservation names) in the owners' list, once. */
  private register(owner: string): Promise<void> {
    let registering = this.registered.get(owner)
    if (!registering) {
      registering = this.redis.sadd(this.keys.owners, owner).then(
        () => undefined,
        (err: unknown) => {
          this.registered.delete(owner)
          throw err
        },
      )
      this.registered.set(owner, registering)
    }
    return registering
  }

  private readonly batcher: CallBatcher<Call>

  /**
   * The calls of one turn of the event loop as FCALLs of the batch function
   * (see scripts.ts): one for all on a single Redis, one per slot on a
   * cluster, all written at once. A Redis that lost its functions
   * (restarted without persistence, flushed, a new master) gets them again.
   */
  private async send(calls: ReadonlyArray<Call>): Promise<unknown[]> {
    if (!this.split) return this.fcall(calls)
    const groups = new Map<string, number[]>()
    calls.forEach((call, i) => {
      const tag = slotTag(call.keys[0]!)
      const group = groups.get(tag)
      if (group) group.push(i)
      else groups.set(tag, [i])
    })
    if (groups.size === 1) return this.fcall(calls)
    const results = new Array<unknown>(calls.length)
    await Promise.all(
      [...groups.values()].map(async (indexes) => {
        let replies: unknown[]
        try {
          replies = await this.fcall(indexes.map((i) => calls[i]!))
        } catch (err) {
          replies = indexes.map(() => (err instanceof Error ? err : new Error(String(err))))
        }
        indexes.forEach((i, j) => {
          results[i] = replies[j]
        })
      }),
    )
    return results
  }

  private async fcall(calls: ReadonlyArray<Call>): Promise<unknown[]> {
    const keys: string[] = []
    const index = new Map<string, string>()
    const args: string[] = []
    for (const call of calls) {
      const layout = OPERATION_CODES[call.operation]
      if (call.keys.length !== layout.keys || call.args.length !== layout.args) throw new Error(`bad ${call.operation} call layout`)
      args.push(layout.code)
      for (const key of call.keys) {
        let i = index.get(key)
        if (i === undefined) {
          i = String(keys.push(key)) // KEYS index, 1-based
          index.set(key, i)
        }
        args.push(i)
      }
      for (const arg of call.args) args.push(arg)
    }
    const send = () => {
      // The arguments are set after construction: Command flattens what it is given (Array#flat, slow
      // on a few hundred arguments), and these are flat strings already.
      const command = new Command('fcall', [], { replyEncoding: 'utf8' })
      command.args = [this.library.batch, String(keys.length), ...keys, ...args]
      void this.redis.sendCommand(command)
      return command.promise as Promise<unknown[]>
    }
    // a node that lost its functions (restarted without persistence, flushed, a new master) gets them again
    if (!this.loaded) {
      await this.load()
      this.loaded = true
    }
    const replies = await callWithFunctionRetry(this.redis, send)
    if (this.durability) await waitForReplica(this.redis, keys[0]!, this.durability.timeoutMs)
    return replies
  }

  /** Queues one operation into the current batch; resolves with its own result. */
  private call(operation: Operation, keys: string[], args: string[]): Promise<string> {
    return this.batcher.call({ operation, keys, args })
  }

  /**
   * Adds accounts to this process's owner index before its first record on
   * them: the sweeper finds a dead process's records through it. Nothing to
   * wait for once an account is in (undefined).
   */
  private index(owner: string, a: string, b: string): Promise<void> | undefined {
    const ka = `${owner}|${a}`
    const kb = `${owner}|${b}`
    const usedA = this.indexed.get(ka)
    const usedB = this.indexed.get(kb)
    if (usedA !== undefined && usedB !== undefined) {
      // when each was last used, to the second: pruneIndex() drops the idle ones
      const now = Date.now()
      if (now - usedA > 1_000) this.indexed.set(ka, now)
      if (now - usedB > 1_000) this.indexed.set(kb, now)
      return undefined
    }
    const waits: Array<Promise<void>> = [this.register(owner)]
    for (const [key, id] of ka === kb ? [[ka, a]] : [[ka, a], [kb, b]]) {
      if (this.indexed.has(key!)) continue
      let adding = this.indexing.get(key!)
      if (!adding) {
        adding = this.redis
          .sadd(this.keys.ownerAccounts(owner), id!)
          .then(() => {
            this.indexed.set(key!, Date.now())
          })
          .finally(() => this.indexing.delete(key!))
        this.indexing.set(key!, adding)
      }
      waits.push(adding)
    }
    return Promise.all(waits).then(() => undefined)
  }

  /**
   * Adds back to the owner index every account this process holds packets
   * on, and forgets the others (each is added again before its next record):
   * after a failover, which may have lost the last writes.
   */
  async reindex(): Promise<void> {
    this.indexed.clear()
    this.registered.clear()
    const held = new Map<string, Set<string>>()
    const hold = (owner: string, ...accounts: string[]) => {
      const set = held.get(owner) ?? new Set<string>()
      for (const a of accounts) set.add(a)
      held.set(owner, set)
    }
    for (const r of [...this.own.reservations(), ...this.own.suspects.values()]) hold(r.bootId, r.incomingAccount, r.outgoingAccount)
    for (const c of [...this.owedCredits, ...this.crediting.keys()]) hold(c.bootId, c.incomingAccount, c.outgoingAccount)
    for (const t of this.transfers.values()) hold(this.bootId, t.incomingAccount)
    await this.register(this.bootId)
    for (const [owner, accounts] of held) {
      await this.register(owner)
      await this.redis.sadd(this.keys.ownerAccounts(owner), ...accounts)
      for (const a of accounts) this.indexed.set(`${owner}|${a}`, Date.now())
    }
  }

  /**
   * Drops from the owner indexes, in Redis and here, the accounts this
   * process has not used for `idleMs` and holds nothing on (no packet in
   * flight, no suspect, no credit owed), so neither grows with the number of
   * accounts a long-lived worker ever touched; more than `maxIndexed` left,
   * the least recently used go too. An account is forgotten here before its
   * SREM is sent, so a packet that comes later adds it again (awaited, on
   * the same connection, after the SREM). Returns how many were dropped.
   */
  async pruneIndex(idleMs = 60_000, maxIndexed = 50_000): Promise<number> {
    const busy = new Set<string>()
    for (const r of [...this.own.reservations(), ...this.own.suspects.values()]) busy.add(`${r.bootId}|${r.incomingAccount}`).add(`${r.bootId}|${r.outgoingAccount}`)
    for (const c of [...this.owedCredits, ...this.crediting.keys()]) busy.add(`${c.bootId}|${c.incomingAccount}`).add(`${c.bootId}|${c.outgoingAccount}`)
    for (const t of this.transfers.values()) busy.add(`${this.bootId}|${t.incomingAccount}`)
    const now = Date.now()
    const over = this.indexed.size - maxIndexed
    const byAge = over > 0 ? [...this.indexed].sort((x, y) => x[1] - y[1]).slice(0, over).map(([key]) => key) : []
    const drop = new Set(byAge.filter((key) => !busy.has(key)))
    for (const [key, usedAt] of this.indexed) if (now - usedAt >= idleMs && !busy.has(key)) drop.add(key)
    const byOwner = new Map<string, string[]>()
    for (const key of drop) {
      if (this.indexing.has(key)) continue
      this.indexed.delete(key)
      const sep = key.indexOf('|')
      const list = byOwner.get(key.slice(0, sep)) ?? []
      list.push(key.slice(sep + 1))
      byOwner.set(key.slice(0, sep), list)
    }
    const removals: Array<Promise<number>> = []
    for (const [owner, accounts] of byOwner) {
      for (let i = 0; i < accounts.length; i += 1000) removals.push(this.redis.srem(this.keys.ownerAccounts(owner), ...accounts.slice(i, i + 1000)))
    }
    await Promise.all(removals)
    return [...byOwner.values()].reduce((n, list) => n + list.length, 0)
  }

  /**
   * Claims the packet and reserves its amounts: the incoming record first,
   * then the outgoing one where there is one (undone if refused). The records are this process's
   * from the moment the first call is sent until fulfill/reject settle them;
   * a call whose outcome stays unknown makes the reservation a suspect (see
   * OwnPackets), which the orphan audit refunds.
   */
  async prepare(r: Reservation): Promise<PrepareOutcome> {
    const field = Keys.hotSetField(r.incomingAccount, r.packetId)
    const bootId = r.bootId ?? this.bootId
    if (bootId !== this.bootId && !BOOT_ID.test(bootId)) throw new Error(`invalid boot id ${JSON.stringify(bootId)}`)
    const indexing = this.index(bootId, r.incomingAccount, r.outgoingAccount)
    if (indexing) await indexing
    const reservation: OwnReservation = {
      incomingAccount: r.incomingAccount,
      packetId: r.packetId,
      outgoingAccount: r.outgoingAccount,
      bootId,
      attempt: (this.attempts++).toString(36),
      // an outgoing record only to hold a maxBalance's headroom, or where a fulfill cannot owe the credit
      outgoingRecord: (r.maxBalance ?? '') !== '' || (this.split && !this.owesCredits),
    }
    const from = this.keys.packetKeys(r.incomingAccount)
    const to = this.keys.packetKeys(r.outgoingAccount)
    const incomingArgs = [
      r.packetId,
      String(r.shard),
      bootId,
      reservation.attempt,
      String(r.expiresAtMs),
      r.inAmount,
      r.outgoingAccount,
      r.outAmount,
      r.minBalance ?? '',
      String(r.parallelism ?? 1),
      r.limits?.maxInFlight === undefined ? '' : String(r.limits.maxInFlight),
      r.limits?.maxPacketsPerSecond === undefined ? '' : String(r.limits.maxPacketsPerSecond),
      r.limits?.maxAmountPerSecond ?? '',
    ]
    this.own.begin(field)
    let result: string
    try {
      if (!this.split) {
        result = await this.call('prepare', [from.account, from.inflight, to.account, to.credits, from.rate], [...incomingArgs, field, r.maxBalance ?? ''])
      } else {
        result = await this.call('prepare-incoming', [from.account, from.inflight, from.rate], incomingArgs)
        if (result === 'OK' && reservation.outgoingRecord) {
          result = await this.call('prepare-outgoing', [to.account, to.credits], [
            field,
            bootId,
            reservation.attempt,
            String(r.expiresAtMs),
            r.outAmount,
            r.maxBalance ?? '',
            '',
            '',
          ])
          if (result !== 'OK') await this.call('reject-incoming', [from.account, from.inflight], [r.packetId, bootId, reservation.attempt, ''])
        }
      }
    } catch (err) {
      this.own.end(field)
      if (mayHaveRun(err) || this.split) this.own.suspect(reservation)
      throw err
    }
    const outcome = PREPARE_OUTCOMES[result]
    if (!outcome) {
      this.own.end(field)
      this.own.suspect(reservation)
      throw new Error(`unexpected prepare result ${result}`)
    }
    if (outcome === 'ok') this.own.grant(field, reservation)
    else this.own.end(field)
    return outcome
  }

  /**
   * The packet was fulfilled: the sender's debit becomes final, then the next
   * hop is credited (split without an outgoing record: owed in the same step,
   * then moved by a transfer). 'gone': the reservation was already settled or refunded,
   * or, on a cluster, the fulfill came after the packet's expiry (it is
   * refunded then: the sweeper's refund is two calls there, which a late
   * fulfill could split). On one Redis a late fulfill is honoured until the
   * sweeper refunds the packet, one atomic call against another. With
   * `creditLater`, a cluster's fulfill answers once it is decided (see
   * FulfillOptions).
   */
  async fulfill(incomingAccount: string, packetId: string, outgoingAccount: string, opts: FulfillOptions = {}): Promise<ResolveOutcome> {
    const field = Keys.hotSetField(incomingAccount, packetId)
    const r = this.own.reservation(field)
    if (!r) return 'gone'
    if (r.outgoingAccount !== outgoingAccount) throw new Error(`packet ${packetId} of ${incomingAccount} goes to ${r.outgoingAccount}, not ${outgoingAccount}`)
    const from = this.keys.packetKeys(incomingAccount)
    const to = this.keys.packetKeys(outgoingAccount)
    let result: string
    if (!this.split) {
      // '' for the outgoing record's field: this reservation wrote none, the chain looks for none
      const outgoingField = r.outgoingRecord === false ? '' : field
      result = await this.call('fulfill', [from.account, from.inflight, to.account, to.credits], [packetId, r.bootId, r.attempt, outgoingAccount, outgoingField])
    } else if (r.outgoingRecord === false) {
      // the decision and the credit it owes are one step; a transfer moves the credit on
      // a transfer of the pair running here takes what this one owes when it ends (MORE); else this one begins it
      const running = this.transfers.get(`${incomingAccount}|${outgoingAccount}`)?.running !== undefined
      result = await this.call('fulfill-incoming', [from.inflight, from.owed], [packetId, r.bootId, r.attempt, outgoingAccount, '', running ? '1' : '2'])
      // 'T<transfer>': it began the pair's transfer too (none was in progress)
      const begun = result.startsWith('T') ? result.slice(1) : undefined
      if (begun !== undefined) result = 'OK'
      // GONE: refunded, or decided by an earlier try whose answer was lost: whatever it owes is moved too
      if (result !== 'EXPIRED') {
        const moving = this.transferOwed(incomingAccount, outgoingAccount, begun)
        if (result === 'OK' && !opts.creditLater) await moving
      } else await this.refundSteps(r, '')
    } else {
      // On a cluster the sweeper's refund is two calls: a late fulfill could land between them, so none is honoured.
      result = await this.call('fulfill-incoming', [from.inflight, from.inflight], [packetId, r.bootId, r.attempt, outgoingAccount, '', ''])
      // decided: the credit follows, and a credit that fails is owed, not undone
      if (result === 'OK') {
        if (opts.creditLater) this.creditLater(r)
        else await this.credit(r)
      }
      else if (result === 'EXPIRED') await this.refundSteps(r, '')
      // gone: refunded, or decided by an earlier try whose answer was lost. An outgoing record
      // without its incoming one is a fulfilled packet: credit it, and the fulfill stands.
      else if (result === 'GONE' && (await this.creditRecord(r)) === 'ok') result = 'OK'
    }
    this.own.end(field, r)
    return result === 'OK' ? 'ok' : result === 'EXPIRED' ? 'gone' : resolveOutcome(result)
  }

  /** The packet failed: the next hop's record is released, then the sender refunded. */
  async reject(incomingAccount: string, packetId: string, outgoingAccount: string): Promise<ResolveOutcome> {
    const field = Keys.hotSetField(incomingAccount, packetId)
    const r = this.own.reservation(field)
    if (!r) return 'gone'
    if (r.outgoingAccount !== outgoingAccount) throw new Error(`packet ${packetId} of ${incomingAccount} goes to ${r.outgoingAccount}, not ${outgoingAccount}`)
    const outcome = await this.refundSteps(r, '')
    this.own.end(field, r)
    if (outcome === 'early') throw new Error('unexpected EARLY for a refund without a time guard')
    return outcome
  }

  /**
   * Refunds one reservation's records, outside its flow (the sweeper, the
   * orphan audit): the outgoing record first, then the incoming one.
   * `notBeforeMs` (Redis' clock) keeps the sweeper clear of a late fulfill.
   */
  refundRecord(r: OwnReservation, notBeforeMs?: number): Promise<RecordOutcome> {
    return this.refundSteps(r, notBeforeMs === undefined ? '' : String(notBeforeMs))
  }

  /** Credits an outgoing record whose incoming record is gone (its packet was fulfilled). */
  async creditRecord(c: RecordRef): Promise<ResolveOutcome> {
    const to = this.keys.packetKeys(c.outgoingAccount)
    return resolveOutcome(await this.call('fulfill-outgoing', [to.account, to.credits], [Keys.hotSetField(c.incomingAccount, c.packetId), c.bootId, c.attempt]))
  }

  private async refundSteps(r: OwnReservation, notBefore: string): Promise<RecordOutcome> {
    const field = Keys.hotSetField(r.incomingAccount, r.packetId)
    const from = this.keys.packetKeys(r.incomingAccount)
    const to = this.keys.packetKeys(r.outgoingAccount)
    if (!this.split) {
      return recordOutcome(await this.call('reject', [from.account, from.inflight, to.account, to.credits], [r.packetId, r.bootId, r.attempt, field, notBefore]))
    }
    // a record read back from Redis (the sweeper's, the audit's) may have an outgoing record: look for it
    if (r.outgoingRecord !== false) {
      const released = await this.call('reject-outgoing', [to.account, to.credits], [field, r.bootId, r.attempt, notBefore])
      if (released === 'EARLY') return 'early'
    }
    return recordOutcome(await this.call('reject-incoming', [from.account, from.inflight], [r.packetId, r.bootId, r.attempt, notBefore]))
  }

  /** A credit sent now and not waited for: held (for the owner index) until it lands or is owed. */
  private creditLater(c: RecordRef): void {
    const landing = this.credit(c).finally(() => this.crediting.delete(c))
    this.crediting.set(c, landing)
  }

  /** A fulfilled packet's credit; one that fails is retried until it lands. Never rejects. */
  private async credit(c: RecordRef): Promise<void> {
    try {
      await this.creditRecord(c)
    } catch {
      this.owedCredits.push(c)
      this.owedTimer ??= setTimeout(() => void this.retryCredits(), 200)
    }
  }

  private async retryCredits(): Promise<void> {
    this.owedTimer = undefined
    const owed = this.owedCredits.splice(0)
    await Promise.all(owed.map((c) => this.creditRecord(c).catch(() => this.owedCredits.push(c))))
    if (this.owedCredits.length > 0) this.owedTimer ??= setTimeout(() => void this.retryCredits(), 1000)
  }

  /**
   * Moves what `incomingAccount` owes `outgoingAccount` into its balance
   * (transfer-begin, -apply, -end), until nothing is owed, starting with
   * `begun` (a transfer a fulfill began) if given; a run already under way
   * for the pair goes round once more (and finds that transfer in
   * progress). Resolves once the pair's run has ended (at once for one that
   * failed: it is retried on a timer). Never rejects.
   */
  transferOwed(incomingAccount: string, outgoingAccount: string, begun?: string): Promise<void> {
    const key = `${incomingAccount}|${outgoingAccount}`
    let t = this.transfers.get(key)
    if (t?.running) {
      t.again = true
      return t.running
    }
    t ??= { incomingAccount, outgoingAccount, running: undefined, again: false }
    this.transfers.set(key, t)
    const pair = t
    pair.running = this.runTransfers(pair, begun).then(
      () => {
        pair.running = undefined
        if (pair.again) return this.transferOwed(incomingAccount, outgoingAccount)
        this.transfers.delete(key)
      },
      () => {
        // kept, so the owner index keeps the account; retried on a timer
        pair.running = undefined
        this.transferTimer ??= setTimeout(() => void this.retryTransfers(), 200)
      },
    )
    return pair.running
  }

  /** One pair's transfers, one after the other, until nothing more is owed. */
  private async runTransfers(t: PairTransfer, begun: string | undefined): Promise<void> {
    // the sweeper finds what this process leaves owed through its owner index
    const indexing = this.index(this.bootId, t.incomingAccount, t.incomingAccount)
    if (indexing) await indexing
    for (let next = begun; ; next = undefined) {
      t.again = false
      if ((await this.transferOnce(t.incomingAccount, t.outgoingAccount, next)) !== 'more') return
    }
  }

  /**
   * One transfer of what an account owes a next hop (or the pair's transfer
   * in progress, whoever began it): 'none' when nothing was owed, 'more'
   * when more was owed meanwhile.
   */
  private async transferOnce(incomingAccount: string, outgoingAccount: string, begunAlready?: string): Promise<'none' | 'done' | 'more'> {
    const from = this.keys.packetKeys(incomingAccount)
    const to = this.keys.packetKeys(outgoingAccount)
    const begun = begunAlready ?? (await this.call('transfer-begin', [from.owed], [outgoingAccount]))
    if (begun === 'NONE') return 'none'
    const bar = begun.indexOf('|')
    const seq = begun.slice(0, bar)
    const amount = begun.slice(bar + 1)
    if (!/^\d+$/.test(seq) || !/^\d+$/.test(amount)) throw new Error(`unexpected transfer ${begun}`)
    await this.call('transfer-apply', [to.account, to.received], [incomingAccount, seq, amount])
    return (await this.call('transfer-end', [from.owed], [outgoingAccount, seq])) === 'MORE' ? 'more' : 'done'
  }

  private async retryTransfers(): Promise<void> {
    this.transferTimer = undefined
    await Promise.all([...this.transfers.values()].filter((t) => !t.running).map((t) => this.transferOwed(t.incomingAccount, t.outgoingAccount)))
    if ([...this.transfers.values()].some((t) => !t.running)) this.transferTimer ??= setTimeout(() => void this.retryTransfers(), 1000)
  }

  /**
   * Moves everything an account owes, to every next hop, including
   * transfers that another process began (the sweeper, for an owner that
   * died). Throws if a transfer could not be made.
   */
  async transferAllOwed(incomingAccount: string): Promise<number> {
    const pairs = await this.owedBy(incomingAccount)
    for (const outgoingAccount of pairs) while ((await this.transferOnce(incomingAccount, outgoingAccount)) !== 'none');
    return pairs.length
  }

  /** The next hops an account owes credits to, or has a transfer in progress to. */
  async owedBy(incomingAccount: string): Promise<string[]> {
    const fields = await this.redis.hkeys(this.keys.packetKeys(incomingAccount).owed)
    const out = new Set<string>()
    for (const f of fields) if (f.startsWith('o:') || f.startsWith('t:')) out.add(f.slice(2))
    return [...out].sort()
  }

  /** Credits still owed by this process (a cluster's fulfills whose credit has not landed yet), in flight or to retry. */
  get owedCreditCount(): number {
    return this.owedCredits.length + this.crediting.size + this.transfers.size
  }

  /**
   * Waits for the credits in flight, then tries the owed ones once more
   * (before close). What still fails stays in its outgoing record for the
   * sweeper, which credits it once this process is gone.
   */
  async flushCredits(): Promise<void> {
    await Promise.all(this.crediting.values())
    if (this.transferTimer) clearTimeout(this.transferTimer)
    this.transferTimer = undefined
    await Promise.all([...this.transfers.values()].map((t) => t.running ?? this.transferOwed(t.incomingAccount, t.outgoingAccount)))
    if (this.transferTimer) clearTimeout(this.transferTimer)
    this.transferTimer = undefined
    if (this.owedTimer) clearTimeout(this.owedTimer)
    await this.retryCredits()
    if (this.owedTimer) clearTimeout(this.owedTimer)
    this.owedTimer = undefined
  }

  async balance(accountId: string): Promise<AccountBalance> {
    const fields = await this.redis.hgetall(this.keys.account(accountId))
    let balance = 0n
    const hot: Record<string, string> = {}
    for (const [field, value] of Object.entries(fields)) {
      if (field === 'cold') balance += BigInt(value)
      else if (field.startsWith('hot:')) {
        balance += BigInt(value)
        hot[field.slice(4)] = value
      }
    }
    return {
      balance: balance.toString(),
      cold: fields.cold ?? '0',
      hot,
      creditsInFlight: fields.creditsInFlight ?? '0',
    }
  }

  /** The accounts in the owner index of each process that may hold records: where every packet in flight is. */
  async accountsWithRecords(): Promise<string[]> {
    const owners = await this.redis.smembers(this.keys.owners)
    const lists = await Promise.all(owners.map((o) => this.redis.smembers(this.keys.ownerAccounts(o))))
    return [...new Set(lists.flat())].sort()
  }

  /** The incoming records of one account. */
  async incomingRecords(accountId: string): Promise<HotSetEntry[]> {
    const fields = await this.redis.hgetall(this.keys.inflight(accountId))
    const out: HotSetEntry[] = []
    for (const [packetId, value] of Object.entries(fields)) {
      const e = parseIncomingRecord(accountId, packetId, value)
      if (e) out.push(e)
    }
    return out
  }

  /** The outgoing records of one account. */
  async outgoingRecords(accountId: string): Promise<PendingCredit[]> {
    const fields = await this.redis.hgetall(this.keys.credits(accountId))
    const out: PendingCredit[] = []
    for (const [field, value] of Object.entries(fields)) {
      const c = parseOutgoingRecord(accountId, field, value)
      if (c) out.push(c)
    }
    return out
  }

  /**
   * Every packet in flight (its incoming record), found through the owners'
   * indexes: the operator's view and tests. Reads only accounts that hold or
   * held packets of a live or unswept owner.
   */
  async hotSet(): Promise<HotSetEntry[]> {
    const accounts = await this.accountsWithRecords()
    return (await Promise.all(accounts.map((a) => this.incomingRecords(a)))).flat()
  }

  /** Every outgoing record (a packet in flight, or fulfilled and waiting for its credit). */
  async pendingCredits(): Promise<PendingCredit[]> {
    const accounts = await this.accountsWithRecords()
    return (await Promise.all(accounts.map((a) => this.outgoingRecords(a)))).flat()
  }
}
