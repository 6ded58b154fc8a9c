/**
 * The load: C lanes, each sending one unique prepare after another to a
 * target (the floor, ilp-connector or a farm) over a warm-up and a measured window, timing
 * every answer that lands in the window.
 */
import { performance } from 'node:perf_hooks'
import type { Pool } from 'undici'
import { outcomeOf, type PacketFactory } from './packets.js'

export interface Target {
  name: 'floor' | 'ilp-connector' | 'farm'
  pool: Pool
  path: string
  headers: Record<string, string>
}

export interface RunResult {
  /** Fulfilled packets completed inside the measured window, per second. */
  pps: number
  p50Ms: number
  p99Ms: number
  /** Completions inside the measured window. */
  measured: number
  /** Fulfilled over the whole run (warm-up, window, drain). */
  fulfilledTotal: number
  /** Anything but a Fulfill over the whole run, by reason. */
  nonFulfill: Record<string, number>
  /** Farm runs: Redis calls per command over the whole run (INFO commandstats delta). */
  redisCommands?: Record<string, number>
  /** CPU time of the forwarding process(es) (floor, or the farm's workers) per fulfilled packet, in µs. */
  hopCpuUsPerPacket?: number
  /**
   * CPU time of the two ends, the load generator (this process) and the receiver, per fulfilled packet, in
   * µs: on one machine they share its cores with the target, so what they take is not the target's to use.
   */
  endsCpuUsPerPacket?: number
  /** Farm runs: redis-server CPU time per fulfilled packet, in µs (on a cluster, its masters'). */
  redisCpuUsPerPacket?: number
  /** Cluster farm runs: the replicas' CPU time per fulfilled packet, in µs. */
  redisReplicaCpuUsPerPacket?: number
}

export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))
  return sorted[rank]!
}

/** Drives one target for warm-up + window; `stopped` ends every lane early (the bench was interrupted). */
export async function drive(target: Target, packets: PacketFactory, concurrency: number, warmupMs: number, durationMs: number, stopped: () => boolean): Promise<RunResult> {
  const start = performance.now()
  const windowStart = start + warmupMs
  const windowEnd = windowStart + durationMs
  const latencies: number[] = []
  let fulfilledInWindow = 0
  let fulfilledTotal = 0
  const nonFulfill: Record<string, number> = {}

  const lane = async (): Promise<void> => {
    while (!stopped() && performance.now() < windowEnd) {
      const body = packets.next()
      const sent = performance.now()
      let outcome: string
      try {
        const res = await target.pool.request({ method: 'POST', path: target.path, headers: target.headers, body })
        outcome = outcomeOf(res.statusCode, Buffer.from(await res.body.arrayBuffer()))
      } catch (err) {
        outcome = `error ${(err as { code?: string }).code ?? (err as Error).message}`
      }
      const done = performance.now()
      if (outcome === 'fulfill') fulfilledTotal++
      else nonFulfill[outcome] = (nonFulfill[outcome] ?? 0) + 1
      if (done >= windowStart && done <= windowEnd) {
        latencies.push(done - sent)
        if (outcome === 'fulfill') fulfilledInWindow++
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, lane))
  const sorted = Float64Array.from(latencies).sort()
  return {
    pps: fulfilledInWindow / (durationMs / 1000),
    p50Ms: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    measured: latencies.length,
    fulfilledTotal,
    nonFulfill,
  }
}
