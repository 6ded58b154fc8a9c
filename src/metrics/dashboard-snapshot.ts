import { isPinned, type LoadedAccount } from '../accounts/registry.js'
import type { PacketServices } from '../packet/context.js'
import type { FarmMetrics } from './farm-metrics.js'
import { type AccountState, readAccount, readFarmState, type WorkerState } from './farm-state.js'
import type { FarmTotals } from './fields.js'

/** How many recently active accounts a snapshot shows (besides the pinned ones). */
export const RECENT_SHOWN = 20
/**
 * Ids read from the recently-active set beyond RECENT_SHOWN: some may have
 * been deleted or pinned since, and are skipped.
 */
const RECENT_SLACK = 10

/** A recently active account: its state and when it last sent a packet (ms since the epoch, the flushing worker's clock). */
export interface RecentAccount extends AccountState {
  readonly activeAt: number
}

/** One account as the dashboard's search shows it (GET /dashboard/accounts/:id). */
export interface AccountDetail extends AccountState {
  readonly origin: LoadedAccount['origin']
  readonly maxPacketAmount: string | null
  /** Its user registered a JSON-RPC URL (ilp_setRpcUrl); the URL itself is not shown. */
  readonly rpcUrlSet: boolean
  readonly hasOutgoingUrl: boolean
  /** Shown on the dashboard and in /metrics on its own (parent, peer, route carrier, `metrics: true`). */
  readonly pinned: boolean
}

export interface RouteView {
  readonly prefix: string
  /**
   * Each next hop: farm-wide packets it fulfilled and failed (those it is to
   * blame for: no answer in time, a wrong fulfillment, T01/T02), and `score`,
   * what the success-rate policy of the serving worker ranks it by: a
   * smoothed, decaying (fulfilled + 1) / (all + 2), 0.5 with no packets, not
   * a share of the counts.
   */
  readonly candidates: Array<{ account: string; source: string; successes: number; failures: number; score: number; dead: boolean }>
}

/** What the dashboard receives every second over SSE. */
export interface DashboardSnapshot {
  /** When it was built (ms since the epoch, the serving worker's clock). */
  readonly at: number
  readonly ilpAddress: string
  /** The pinned accounts: parents, peers, route carriers and those opted in with `metrics: true`. */
  readonly accounts: AccountState[]
  /** Up to RECENT_SHOWN other accounts that sent packets lately, newest first. */
  readonly recent: RecentAccount[]
  /** How many live accounts the farm has. */
  readonly accountCount: number
  readonly routes: RouteView[]
  /** Farm-wide totals since the metrics began: the page turns them into rates. */
  readonly packets: { fulfilled: number; rejected: number; rejectedByCode: Record<string, number> }
  readonly inFlight: number
  readonly leader: string | null
  readonly workers: WorkerState[]
  /** The worker streaming this page (its SSE connection is held by one worker). */
  readonly servedBy: { shard: number; bootId: string }
}

function packetTotals(totals: FarmTotals): DashboardSnapshot['packets'] {
  const out = { fulfilled: 0, rejected: 0, rejectedByCode: {} as Record<string, number> }
  for (const p of totals.packets) {
    if (p.outcome === 'fulfilled') out.fulfilled += p.value
    else {
      out.rejected += p.value
      const code = p.code ?? 'other'
      out.rejectedByCode[code] = (out.rejectedByCode[code] ?? 0) + p.value
    }
  }
  return out
}

/**
 * The newest entries of the recently-active set (FarmMetrics writes it),
 * each loaded through the worker's account cache: a bounded number of reads
 * whatever the number of accounts. Deleted accounts, and accounts pinned
 * since (they are shown anyway), are skipped.
 */
async function readRecent(services: Pick<PacketServices, 'registry' | 'ledger'>): Promise<RecentAccount[]> {
  const flat = await services.ledger.redis.zrevrange(services.ledger.keys.activeAccounts, 0, RECENT_SHOWN + RECENT_SLACK - 1, 'WITHSCORES')
  const entries: Array<{ id: string; activeAt: number }> = []
  for (let i = 0; i + 1 < flat.length; i += 2) entries.push({ id: flat[i]!, activeAt: Number(flat[i + 1]) })
  const loaded = await Promise.all(entries.map((e) => services.registry.load(e.id)))
  const shown = entries
    .map((e, i) => ({ ...e, account: loaded[i] }))
    .filter((e): e is typeof e & { account: LoadedAccount } => e.account !== undefined && !isPinned(e.account.account))
    .slice(0, RECENT_SHOWN)
  return Promise.all(shown.map(async (e) => ({ ...(await readAccount(e.account.account, services.ledger)), activeAt: e.activeAt })))
}

/** The dashboard's search answer for one account, read now (not from the cache); undefined when there is none. */
export async function readAccountDetail(services: Pick<PacketServices, 'registry' | 'ledger'>, id: string): Promise<AccountDetail | undefined> {
  const loaded = await services.registry.readNow(id)
  if (loaded === undefined) return undefined
  const { account } = loaded
  return {
    ...(await readAccount(account, services.ledger)),
    origin: loaded.origin,
    maxPacketAmount: account.maxPacketAmount ?? null,
    rpcUrlSet: loaded.rpcUrl !== undefined,
    hasOutgoingUrl: account.outgoing !== undefined,
    pinned: isPinned(account),
  }
}

/**
 * One dashboard update: the pinned accounts and the most recently active
 * others (never every account: a farm may have millions), how many there
 * are, balances, the routing table, farm-wide packet totals, in-flight
 * packets, workers and the leader.
 */
export async function buildSnapshot(services: PacketServices, metrics: FarmMetrics): Promise<DashboardSnapshot> {
  const [state, recent, accountCount, routes, totals] = await Promise.all([
    readFarmState(services),
    readRecent(services),
    services.registry.count(),
    services.routes.describe(),
    metrics.totals(),
  ])
  return {
    at: Date.now(),
    ilpAddress: services.ilpAddress,
    accounts: state.accounts,
    recent,
    accountCount,
    routes: routes.map((r) => ({
      prefix: r.prefix,
      candidates: r.candidates.map((c) => ({
        account: c.account,
        source: c.source,
        successes: c.successes,
        failures: c.failures,
        score: c.successRate,
        dead: c.dead,
      })),
    })),
    packets: packetTotals(totals),
    inFlight: state.inFlight,
    leader: state.leader,
    workers: state.workers,
    servedBy: { shard: services.shard, bootId: services.ledger.bootId },
  }
}
