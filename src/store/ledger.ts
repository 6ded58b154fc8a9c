import type { Redis } from 'ioredis'
import { Keys } from './keys.js'
import { type BatchItem, CallBatcher } from './batcher.js'
import { functionLibrary, type Transition } from './scripts.js'

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
  shard: number
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

  constructor(
    readonly redis: Redis,
    keyPrefix: string,
  ) {
    this.keys = new Keys(keyPrefix)
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

  private readonly batchers: Record<Transition, CallBatcher> = {
    prepare: new CallBatcher((items) => this.send('prepare', items)),
    fulfill: new CallBatcher((items) => this.send('fulfill', items)),
    reject: new CallBatcher((items) => this.send('reject', items)),
  }

  /**
   * One FCALL for a batch of packets (see scripts.ts for the layout). A Redis
   * that lost its functions (restarted without persistence, flushed) gets them again.
   */
  private async send(transition: Transition, items: ReadonlyArray<BatchItem>): Promise<unknown[]> {
    const fn = this.library.functions[transition]
    const keys = [this.keys.hotSet, this.keys.hotSetExpiry, ...items.flatMap((i) => i.keys)]
    const args = [String(items[0]!.args.length), String(items[0]!.keys.length), ...items.flatMap((i) => i.args)]
    const fcall = () => this.redis.fcall(fn, keys.length, ...keys, ...args) as Promise<unknown[]>
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
    return this.batchers[transition].call(keys, args)
  }

  async prepare(r: Reservation): Promise<PrepareOutcome> {
    const result = await this.call(
      'prepare',
      [this.keys.account(r.incomingAccount), this.keys.account(r.outgoingAccount)],
      [
        Keys.hotSetField(r.incomingAccount, r.packetId),
        String(r.shard),
        r.inAmount,
        r.outgoingAccount,
        r.outAmount,
        String(r.expiresAtMs),
        r.minBalance ?? '',
        r.maxBalance ?? '',
      ],
    )
    const outcome = PREPARE_OUTCOMES[result]
    if (!outcome) throw new Error(`unexpected prepare result ${result}`)
    return outcome
  }

  async fulfill(incomingAccount: string, packetId: string, outgoingAccount: string): Promise<ResolveOutcome> {
    return resolveOutcome(
      await this.call(
        'fulfill',
        [this.keys.account(outgoingAccount)],
        [Keys.hotSetField(incomingAccount, packetId), outgoingAccount],
      ),
    )
  }

  async reject(incomingAccount: string, packetId: string, outgoingAccount: string): Promise<ResolveOutcome> {
    return resolveOutcome(
      await this.call(
        'reject',
        [this.keys.account(incomingAccount), this.keys.account(outgoingAccount)],
        [Keys.hotSetField(incomingAccount, packetId), outgoingAccount],
      ),
    )
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
    return Object.entries(fields).map(([field, value]) => {
      const sep = field.indexOf('|')
      const [shard, expiresAt, inAmount, outgoingAccount, outAmount, headroom] = value.split('|')
      return {
        incomingAccount: field.slice(0, sep),
        packetId: field.slice(sep + 1),
        shard: Number(shard),
        expiresAtMs: Number(expiresAt),
        inAmount: inAmount!,
        outgoingAccount: outgoingAccount!,
        outAmount: outAmount!,
        headroom: headroom!,
      }
    })
  }
}
