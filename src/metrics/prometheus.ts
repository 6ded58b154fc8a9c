import { Counter, Gauge, Histogram, type MetricType, Registry } from 'prom-client'
import type { FarmState } from './farm-state.js'
import { type FarmTotals, PACKET_BUCKETS, REDIS_BUCKETS, type StoredHistogram } from './fields.js'

/** What one scrape shows: the farm-wide counters and the state read from Redis now. */
export interface ScrapeData {
  readonly totals: FarmTotals
  readonly state: FarmState
}

type HistogramObject<T extends string> = Awaited<ReturnType<Histogram<T>['get']>>

/** prom-client types `type` as a numeric enum; at run time it is the string written after `# TYPE`. */
const HISTOGRAM_TYPE = 'histogram' as unknown as MetricType

/**
 * A histogram whose buckets come from the farm-wide hash, not from observe():
 * prom-client has no way to set a histogram's bucket counts, so this one
 * answers get() itself, in the shape prom-client's Histogram gives (cumulative
 * `_bucket` series with `le`, `_sum`, `_count`), and the Registry formats it.
 */
class FarmHistogram<T extends string> extends Histogram<T> {
  constructor(
    private readonly metricName: string,
    private readonly helpText: string,
    private readonly label: T,
    private readonly bounds: readonly number[],
    private readonly series: () => ReadonlyMap<string, StoredHistogram>,
  ) {
    super({ name: metricName, help: helpText, labelNames: [label], buckets: [...bounds], registers: [] })
  }

  override async get(): Promise<HistogramObject<T>> {
    const values: HistogramObject<T>['values'] = []
    for (const [labelValue, h] of [...this.series()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      const labels = { [this.label]: labelValue } as Partial<Record<T, string>>
      let count = 0
      for (const n of h.buckets.values()) count += n
      for (const le of this.bounds) {
        let cumulative = 0
        // stored buckets are per bound; any bound at or below `le` counts (so older bucket layouts still add up)
        for (const [bound, n] of h.buckets) if (bound <= le) cumulative += n
        values.push({ metricName: `${this.metricName}_bucket`, labels: { ...labels, le }, value: cumulative })
      }
      values.push({ metricName: `${this.metricName}_bucket`, labels: { ...labels, le: '+Inf' }, value: count })
      values.push({ metricName: `${this.metricName}_sum`, labels, value: h.sum })
      values.push({ metricName: `${this.metricName}_count`, labels, value: count })
    }
    return { name: this.metricName, help: this.helpText, type: HISTOGRAM_TYPE, aggregator: 'sum', collect: () => undefined, values }
  }

  /** The Registry prefers this one when it exists (prom-client's Histogram has it): the same answer. */
  getForPromString(): Promise<HistogramObject<T>> {
    return this.get()
  }
}

const num = (decimal: string): number => Number(decimal)

/**
 * The farm's /metrics, rendered by prom-client. The metrics are defined once;
 * their collect() callbacks fill them from the data of the scrape being
 * rendered (renders are serialized, so each sees its own data).
 */
export class PrometheusView {
  readonly registry = new Registry()
  private data: ScrapeData | undefined
  private rendering: Promise<unknown> = Promise.resolve()

  constructor() {
    this.defineCounters()
    this.defineHistograms()
    this.defineAccountGauges()
    this.defineFarmGauges()
  }

  get contentType(): string {
    return this.registry.contentType
  }

  render(data: ScrapeData): Promise<string> {
    const run = this.rendering.then(async () => {
      this.data = data
      try {
        return await this.registry.metrics()
      } finally {
        this.data = undefined
      }
    })
    this.rendering = run.catch(() => undefined)
    return run
  }

  private get current(): ScrapeData {
    if (!this.data) throw new Error('metrics collected outside a render')
    return this.data
  }

  private defineCounters(): void {
    // collect() runs with `this` bound to the metric: the scrape's data comes through this closure
    const current = () => this.current
    new Counter({
      name: 'ilpfarm_packets_total',
      help: 'ILP prepares the farm answered, farm-wide, by incoming account, outcome (fulfilled, rejected) and reject code',
      labelNames: ['account', 'outcome', 'code'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const p of current().totals.packets) {
          this.inc(p.code === undefined ? { account: p.account, outcome: p.outcome } : { account: p.account, outcome: p.outcome, code: p.code }, p.value)
        }
      },
    })
    new Counter({
      name: 'ilpfarm_packet_amount_total',
      help: "Sum of the prepares' amounts, farm-wide, in the incoming account's base units, by incoming account and outcome",
      labelNames: ['account', 'outcome'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const a of current().totals.amounts) this.inc({ account: a.account, outcome: a.outcome }, a.value)
      },
    })
  }

  private defineHistograms(): void {
    this.registry.registerMetric(
      new FarmHistogram(
        'ilpfarm_packet_duration_seconds',
        'Time from a prepare entering the packet path to its fulfill or reject, farm-wide, by outcome',
        'outcome',
        PACKET_BUCKETS,
        () => this.current.totals.packetSeconds,
      ),
    )
    this.registry.registerMetric(
      new FarmHistogram(
        'ilpfarm_redis_command_duration_seconds',
        "Redis calls of the workers' command connections, from the client taking the call to its reply, farm-wide, by command (fcall:<function> for the packet scripts)",
        'command',
        REDIS_BUCKETS,
        () => this.current.totals.redisSeconds,
      ),
    )
  }

  private defineAccountGauges(): void {
    // collect() runs with `this` bound to the metric: the scrape's data comes through this closure
    const current = () => this.current
    const perAccount = (name: string, help: string, value: (a: FarmState['accounts'][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['account'] as const,
        registers: [this.registry],
        collect() {
          this.reset()
          for (const a of current().state.accounts) {
            const v = value(a)
            if (v !== undefined) this.set({ account: a.id }, v)
          }
        },
      })
    perAccount('ilpfarm_account_balance', 'Balance in base units: positive, the farm owes the account holder; negative, the holder owes the farm', (a) => num(a.balance))
    perAccount('ilpfarm_account_credits_in_flight', 'Headroom reserved against maxBalance by packets in flight towards the account, in base units', (a) => num(a.creditsInFlight))
    perAccount('ilpfarm_account_min_balance', 'Lowest balance the account may reach (minBalance), in base units', (a) => num(a.minBalance))
    perAccount('ilpfarm_account_max_balance', 'Highest balance the account may reach (maxBalance), in base units; absent: no limit', (a) =>
      a.maxBalance === null ? undefined : num(a.maxBalance),
    )
    new Gauge({
      name: 'ilpfarm_account_info',
      help: "Always 1: an account's relation and asset",
      labelNames: ['account', 'relation', 'asset_code', 'asset_scale'] as const,
      registers: [this.registry],
      collect() {
        this.reset()
        for (const a of current().state.accounts) {
          this.set({ account: a.id, relation: a.relation, asset_code: a.assetCode, asset_scale: String(a.assetScale) }, 1)
        }
      },
    })
  }

  private defineFarmGauges(): void {
    // collect() runs with `this` bound to the metric: the scrape's data comes through this closure
    const current = () => this.current
    new Gauge({
      name: 'ilpfarm_packets_in_flight',
      help: 'Packets reserved and not yet settled, farm-wide (held by the live workers at their last heartbeat)',
      registers: [this.registry],
      collect() {
        this.set(current().state.inFlight)
      },
    })
    new Gauge({
      name: 'ilpfarm_workers_live',
      help: 'Workers whose heartbeat has not expired',
      registers: [this.registry],
      collect() {
        this.set(current().state.workers.filter((w) => w.up).length)
      },
    })
    const perWorker = (name: string, help: string, value: (w: FarmState['workers'][number]) => number | undefined) =>
      new Gauge({
        name,
        help,
        labelNames: ['host_id', 'shard'] as const,
        registers: [this.registry],
        collect() {
          this.reset()
          for (const w of current().state.workers) {
            const v = value(w)
            if (v !== undefined) this.set({ host_id: w.hostId, shard: String(w.shard) }, v)
          }
        },
      })
    perWorker('ilpfarm_worker_up', '1 while the worker\'s heartbeat is live, 0 once it has expired (for every host id and shard that ever beat)', (w) => (w.up ? 1 : 0))
    perWorker('ilpfarm_worker_heartbeat_age_seconds', "Age of a live worker's last heartbeat, on Redis' clock", (w) =>
      w.heartbeatAgeMs === null ? undefined : w.heartbeatAgeMs / 1000,
    )
    perWorker('ilpfarm_worker_leader', '1 for the worker holding the leader lease, else 0', (w) => (w.leader ? 1 : 0))
  }
}
