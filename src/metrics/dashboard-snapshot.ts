import type { PacketServices } from '../packet/context.js'
import type { FarmMetrics } from './farm-metrics.js'
import { type AccountState, readFarmState, type WorkerState } from './farm-state.js'
import type { FarmTotals } from './fields.js'

export interface RouteView {
  readonly prefix: string
  readonly candidates: Array<{ account: string; source: string; successes: number; failures: number; dead: boolean }>
}

/** What the dashboard receives every second over SSE. */
export interface DashboardSnapshot {
  /** When it was built (ms since the epoch, the serving worker's clock). */
  readonly at: number
  readonly ilpAddress: string
  readonly accounts: AccountState[]
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
 * One dashboard update: accounts (from the worker's live account map, so
 * accounts added at runtime appear), balances, the routing table, farm-wide
 * packet totals, in-flight packets, workers and the leader.
 */
export async function buildSnapshot(services: PacketServices, metrics: FarmMetrics): Promise<DashboardSnapshot> {
  const [state, routes, totals] = await Promise.all([readFarmState(services), services.routes.describe(), metrics.totals()])
  return {
    at: Date.now(),
    ilpAddress: services.ilpAddress,
    accounts: state.accounts,
    routes: routes.map((r) => ({
      prefix: r.prefix,
      candidates: r.candidates.map((c) => ({ account: c.account, source: c.source, successes: c.successes, failures: c.failures, dead: c.dead })),
    })),
    packets: packetTotals(totals),
    inFlight: state.inFlight,
    leader: state.leader,
    workers: state.workers,
    servedBy: { shard: services.shard, bootId: services.ledger.bootId },
  }
}
