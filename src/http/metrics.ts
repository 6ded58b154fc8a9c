import type { FastifyInstance } from 'fastify'
import { readFarmState } from '../metrics/farm-state.js'
import type { FarmMetrics } from '../metrics/farm-metrics.js'
import { PrometheusView } from '../metrics/prometheus.js'
import type { PacketServices } from '../packet/context.js'
import type { Scope } from './scopes.js'

export interface MetricsDeps {
  services: PacketServices
  metrics: FarmMetrics
}

/**
 * GET /metrics: Prometheus text format, for the whole farm whichever worker
 * answers (docs/METRICS.md). Counters come from the farm-wide hash (this
 * worker's counts are flushed into it first), gauges are read from Redis now.
 * It names accounts and their balances, so it takes an operator token with
 * the scope `metrics` (`Authorization: Bearer`, Prometheus' `authorization`
 * scrape setting); `read` alone does not reach it, so a scraper's token can
 * hold `metrics` and nothing else. It is registered inside operatorAuth,
 * whose hook checks the token before the route runs.
 * 503 while Redis cannot be read: Prometheus then records the scrape as failed.
 */
export const METRICS_SCOPE: Scope = 'metrics'

export function metricsEndpoint(deps: MetricsDeps) {
  const view = new PrometheusView()

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get('/metrics', { config: { scope: METRICS_SCOPE } }, async (_request, reply) => {
      let text: string
      try {
        const [totals, state] = await Promise.all([deps.metrics.totals(), readFarmState(deps.services)])
        text = await view.render({ totals, state })
      } catch (err) {
        deps.services.log.warn({ err }, 'metrics: scrape failed')
        return reply.code(503).send({ error: 'the farm\'s metrics could not be read from Redis' })
      }
      return reply.type(view.contentType).header('cache-control', 'no-store').send(text)
    })
  }
}
