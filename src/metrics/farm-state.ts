import type { AccountRegistry } from '../accounts/registry.js'
import type { AccountConfig } from '../config/schema.js'
import { Coordination } from '../store/coordination.js'
import { Keys } from '../store/keys.js'
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
  /** The supervisor it runs under (`farm.hostId`). */
  readonly hostId: string
  readonly shard: number
  /** False: the worker has beaten before, but its heartbeat has expired. */
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
  /** Packets in flight farm-wide: what the live workers held at their last beat. */
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
 * Every worker that ever beat (the `workers` set: `<hostId>/<shard>`), up
 * or not, with the live ones' heartbeat age and the leader, from
 * Coordination.status(); by host id, then shard.
 */
async function readWorkers(ledger: Ledger): Promise<{ leader: string | null; workers: WorkerState[]; inFlight: number }> {
  const [status, everBeat] = await Promise.all([new Coordination(ledger.redis, ledger.keys).status(), ledger.redis.smembers(ledger.keys.workers)])
  const live = new Map(status.workers.map((w) => [Keys.workerId(w.hostId, w.shard), w]))
  const ids = new Map<string, { hostId: string; shard: number }>()
  for (const id of everBeat) {
    const parsed = Keys.parseWorkerId(id)
    if (parsed) ids.set(id, parsed)
  }
  for (const [id, w] of live) ids.set(id, w)
  const workers = [...ids]
    .sort(([, a], [, b]) => (a.hostId === b.hostId ? a.shard - b.shard : a.hostId < b.hostId ? -1 : 1))
    .map(([id, { hostId, shard }]): WorkerState => {
      const w = live.get(id)
      if (!w) return { hostId, shard, up: false, bootId: null, host: null, pid: null, heartbeatAgeMs: null, leader: false }
      return { hostId, shard, up: true, bootId: w.bootId, host: w.host, pid: w.pid, heartbeatAgeMs: w.heartbeatAgeMs, leader: w.leader }
    })
  const inFlight = status.workers.reduce((sum, w) => sum + (w.inFlight ?? 0), 0)
  return { leader: status.leader, workers, inFlight }
}

/** Balances of the pinned accounts, the workers (with what they hold in flight) and the leader: all reads, auto-pipelined into a few round trips. */
export async function readFarmState(source: FarmStateSource): Promise<FarmState> {
  const [accounts, { inFlight, ...workers }] = await Promise.all([
    Promise.all([...source.registry.pinnedAccounts()].map((a) => readAccount(a.account, source.ledger))),
    readWorkers(source.ledger),
  ])
  return { accounts, inFlight, ...workers }
}
