import { randomBytes } from 'node:crypto'
import { Command, type Redis } from 'ioredis'
import { Keys } from './keys.js'
import { CallBatcher } from './batcher.js'
import { OwnPackets } from './own-packets.js'
import { functionLibrary, type Transition, TRANSITION_CODES } from './scripts.js'

export type PrepareOutcome = 'ok' | 'duplicate' | 'insufficient-balance' | 'exceeds-max-balance'
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
  /** Owner recorded in the entry; default: the Ledger's bootId. */
  bootId?: string
  /** Incoming account's parallelism P: the lease a shard takes from cold is up to P x amount. Default 1. */
  parallelism?: number
}

export interface AccountBalance {
  /** cold + every shard's hot balance: positive, the farm owes the account; negative, the account owes the farm. */
  balance: string
  cold: string
  hot: Record<string, string>
  /** Headroom reserved against maxBalance by packets in flight towards this account. */
  creditsInFlight: string
}

export interface HotSetEntry {
  incomingAccount: string
  packetId: string
  /** Worker slot whose hot balance a refund goes back to. */
  shard: number
  /** Boot id of the worker process that owns the packet ('' for an entry from before owners were recorded). */
  bootId: string
  expiresAtMs: number
  inAmount: string
  outgoingAccount: string
  outAmount: string
  headroom: string
}

const PREPARE_OUTCOMES: Record<string, PrepareOutcome> = {
  OK: 'ok',
  DUPLICATE: 'duplicate',
  INSUFFICIENT_BALANCE: 'insufficient-balance',
  EXCEEDS_MAX_BALANCE: 'exceeds-max-balance',
}

/** The boot id of a worker process: `<shard>-<random>`, new at every start. */
export function newBootId(shard: number | string): string {
  return `${shard}-${randomBytes(6).toString('hex')}`
}

const BOOT_ID = /^[A-Za-z0-9_.:-]{1,100}$/

/** A hotSet entry from its field and value (lua/lib/entry.lua has the format). */
export function parseHotSetEntry(field: string, value: string): HotSetEntry {
  const sep = field.indexOf('|')
  const parts = value.split('|')
  if (parts.length === 6) parts.splice(1, 0, '') // written before owners were recorded
  const [shard, bootId, expiresAt, inAmount, outgoingAccount, outAmount, headroom] = parts
  return {
    incomingAccount: field.slice(0, sep),
    packetId: field.slice(sep + 1),
    shard: Number(shard),
    bootId: bootId!,
    expiresAtMs: Number(expiresAt),
    inAmount: inAmount!,
    outgoingAccount: outgoingAccount!,
    outAmount: outAmount!,
    headroom: headroom!,
  }
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

/** One packet's transition, queued for the next batch. */
interface Operation {
  transition: Transition
  /** Account keys, in the order the transition's KEYS[2..] take them. */
  keys: string[]
  args: string[]
}

/** Guard of a refund made outside the packet's flow: the entry that was examined. */
export interface RejectGuard {
  bootId: string
  expiresAtMs: number
}

function resolveOutcome(result: string): ResolveOutcome {
  if (result === 'OK') return 'ok'
  if (result === 'GONE') return 'gone'
  throw new Error(`unexpected script result ${result}`)
}

/**
 * The balances and the hotSet. Each packet state transition is exactly one
 * Lua script call, so Redis applies it whole or not at all.
 */
export class Ledger {
  readonly keys: Keys
  private readonly library = functionLibrary()
  private loading: Promise<void> | undefined
  /** Owner written into the hotSet entries of this worker process's packets. */
  readonly bootId: string
  /** This process's own open packets and suspected orphans (see own-packets.ts). */
  readonly own = new OwnPackets()

  constructor(
    readonly redis: Redis,
    keyPrefix: string,
    opts: { bootId?: string } = {},
  ) {
    this.keys = new Keys(keyPrefix)
    this.bootId = opts.bootId ?? newBootId('x')
    if (!BOOT_ID.test(this.bootId)) throw new Error(`invalid boot id ${JSON.stringify(this.bootId)}`)
  }

  /** FUNCTION LOAD the scripts (idempotent). Needs Redis 7 or newer. */
  load(): Promise<void> {
    this.loading ??= this.redis
      .call('FUNCTION', 'LOAD', 'REPLACE', this.library.code)
      .then(
        () => undefined,
        (err: Error) => {
          throw /unknown command/i.test(err.message)
            ? new Error(`Redis 7.0 or newer is needed (Redis Functions): ${err.message}`)
            : err
        },
      )
      .finally(() => {
        this.loading = undefined
      })
    return this.loading
  }

  private readonly batcher = new CallBatcher<Operation>((ops) => this.send(ops))

  /**
   * One FCALL for a batch of packet transitions (see scripts.ts for the
   * layout), written to the connection at once: the batch is already the
   * pipeline. A Redis that lost its functions (restarted without persistence,
   * flushed) gets them again.
   */
  private async send(ops: ReadonlyArray<Operation>): Promise<unknown[]> {
    const keys = [this.keys.hotSet]
    const index = new Map<string, string>()
    const args: string[] = []
    for (const op of ops) {
      const layout = TRANSITION_CODES[op.transition]
      if (op.keys.length !== layout.keys || op.args.length !== layout.args) throw new Error(`bad ${op.transition} call layout`)
      args.push(layout.code)
      for (const key of op.keys) {
        let i = index.get(key)
        if (i === undefined) {
          i = String(keys.push(key)) // KEYS index, 1-based
          index.set(key, i)
        }
        args.push(i)
      }
      for (const arg of op.args) args.push(arg)
    }
    const fcall = () => {
      // The arguments are set after construction: Command flattens what it is given (Array#flat, slow
      // on a few hundred arguments), and these are flat strings already.
      const command = new Command('fcall', [], { replyEncoding: 'utf8' })
      command.args = [this.library.batch, String(keys.length), ...keys, ...args]
      this.redis.sendCommand(command)
      return command.promise as Promise<unknown[]>
    }
    try {
      return await fcall()
    } catch (err) {
      if (!/function not found/i.test((err as Error).message)) throw err
      await this.load()
      return await fcall()
    }
  }

  /** Queues one packet's transition into the current batch; resolves with its own result. */
  private call(transition: Transition, keys: string[], args: string[]): Promise<string> {
    return this.batcher.call({ transition, keys, args })
  }

  /**
   * Claims the packet and reserves its amounts. The entry is this process's
   * from the moment the call is sent until fulfill/reject settle it; a call
   * whose outcome stays unknown makes the field a suspect (see OwnPackets).
   */
  async prepare(r: Reservation): Promise<PrepareOutcome> {
    const field = Keys.hotSetField(r.incomingAccount, r.packetId)
    const bootId = r.bootId ?? this.bootId
    if (bootId !== this.bootId && !BOOT_ID.test(bootId)) throw new Error(`invalid boot id ${JSON.stringify(bootId)}`)
    this.own.begin(field)
    let result: string
    try {
      result = await this.call(
        'prepare',
        [this.keys.account(r.incomingAccount), this.keys.account(r.outgoingAccount)],
        [
          field,
          String(r.shard),
          r.inAmount,
          r.outgoingAccount,
          r.outAmount,
          String(r.expiresAtMs),
          r.minBalance ?? '',
          r.maxBalance ?? '',
          bootId,
          String(r.parallelism ?? 1),
        ],
      )
    } catch (err) {
      this.own.end(field)
      if (mayHaveRun(err)) this.own.suspect(field, { incomingAccount: r.incomingAccount, packetId: r.packetId })
      throw err
    }
    const outcome = PREPARE_OUTCOMES[result]
    if (outcome !== 'ok') {
      this.own.end(field)
      // The entry in the way may be an orphan of this process (a prepare whose answer it never got).
      if (outcome === 'duplicate' && !this.own.isOpen(field)) {
        this.own.suspect(field, { incomingAccount: r.incomingAccount, packetId: r.packetId })
      }
    }
    if (!outcome) throw new Error(`unexpected prepare result ${result}`)
    return outcome
  }

  async fulfill(incomingAccount: string, packetId: string, outgoingAccount: string): Promise<ResolveOutcome> {
    const field = Keys.hotSetField(incomingAccount, packetId)
    const outcome = resolveOutcome(await this.call('fulfill', [this.keys.account(outgoingAccount)], [field, outgoingAccount]))
    this.own.end(field)
    return outcome
  }

  /**
   * Refunds the packet. With a guard (the sweeper, the orphan audit), only
   * the entry with that owner and expiry is refunded; another is 'gone'.
   */
  async reject(incomingAccount: string, packetId: string, outgoingAccount: string, guard?: RejectGuard): Promise<ResolveOutcome> {
    const field = Keys.hotSetField(incomingAccount, packetId)
    const outcome = resolveOutcome(
      await this.call(
        'reject',
        [this.keys.account(incomingAccount), this.keys.account(outgoingAccount)],
        // always four arguments: calls of one batch share their layout
        [field, outgoingAccount, guard?.bootId ?? '', guard ? String(guard.expiresAtMs) : ''],
      ),
    )
    if (!guard) this.own.end(field)
    return outcome
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

  async hotSet(): Promise<HotSetEntry[]> {
    const fields = await this.redis.hgetall(this.keys.hotSet)
    return Object.entries(fields).map(([field, value]) => parseHotSetEntry(field, value))
  }
}
