import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import { Coordination } from '../store/coordination.js'
import type { Ledger } from '../store/ledger.js'

/** One account as the metrics and the dashboard show it; amounts are decimal strings in its base units. */
export interface AccountState {
  readonly id: string
  readonly relation: AccountConfig['relation']
  readonly assetCode: string
  readonly assetScale: number
  readonly balance: string
  readonly creditsInFlight: string
  readonly minBalance: string
  readonly maxBalance: string | null
}

export interface WorkerState {
  readonly shard: number
  /** False: the shard has beaten before, but its heartbeat has expired. */
  readonly up: boolean
  readonly bootId: string | null
  readonly host: string | null
  readonly pid: number | null
  readonly heartbeatAgeMs: number | null
  readonly leader: boolean
}

/** What is read from Redis at the moment of a scrape or a dashboard update (gauges, not counters). */
export interface FarmState {
  readonly accounts: AccountState[]
  /** Packets in flight farm-wide: entries of the hotSet. */
  readonly inFlight: number
  /** Boot id holding the leader lease; null when nobody does. */
  readonly leader: string | null
  readonly workers: WorkerState[]
}

export interface FarmStateSource {
  /**
   * The accounts shown one by one: the pinned ones (parents, peers, route
   * carriers, accounts opted in with `metrics: true`), never every account.
   */
  readonly registry: Pick<AccountRegistry, 'pinnedAccounts'>
  readonly ledger: Ledger
}

export async function readAccount(account: AccountConfig, ledger: Ledger): Promise<AccountState> {
  const b = await ledger.balance(account.id)
  return {
    id: account.id,
    relation: account.relation,
    assetCode: account.assetCode,
    assetScale: account.assetScale,
    balance: b.balance,
    creditsInFlight: b.creditsInFlight,
    minBalance: account.minBalance,
    maxBalance: account.maxBalance ?? null,
  }
}

/**
 * Every shard that ever beat (the `workers` set), up or not, with the live
 * ones' heartbeat age and the leader, from Coordination.status().
 */
async function readWorkers(ledger: Ledger): Promise<{ leader: string | null; workers: WorkerState[] }> {
  const [status, everBeat] = await Promise.all([new Coordination(ledger.redis, ledger.keys).status(), ledger.redis.smembers(ledger.keys.workers)])
  const live = new Map(status.workers.map((w) => [w.shard, w]))
  const shards = [...new Set([...everBeat.map(Number).filter(Number.isInteger), ...live.keys()])].sort((a, b) => a - b)
  const workers = shards.map((shard): WorkerState => {
    const w = live.get(shard)
    if (!w) return { shard, up: false, bootId: null, host: null, pid: null, heartbeatAgeMs: null, leader: false }
    return { shard, up: true, bootId: w.bootId, host: w.host, pid: w.pid, heartbeatAgeMs: w.heartbeatAgeMs, leader: w.leader }
  })
  return { leader: status.leader, workers }
}

/** Balances of the pinned accounts, the hotSet's size, the workers and the leader: all reads, auto-pipelined into a few round trips. */
export async function readFarmState(source: FarmStateSource): Promise<FarmState> {
  const [accounts, inFlight, workers] = await Promise.all([
    Promise.all([...source.registry.pinnedAccounts()].map((a) => readAccount(a.account, source.ledger))),
    source.ledger.redis.hlen(source.ledger.keys.hotSet),
    readWorkers(source.ledger),
  ])
  return { accounts, inFlight, ...workers }
}
