import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Coordination } from '../store/coordination.js'
import { Repeater } from '../util/repeat.js'

export interface HeartbeatOptions {
  coordination: Coordination
  shard: number
  bootId: string
  log: Logger
  /** How often the key is written (default 1000 ms). */
  intervalMs?: number
  /** The key's TTL: the worker counts as dead this long after its last beat (default 3000 ms). */
  ttlMs?: number
  /** Packets the worker holds in flight now, written into each beat. */
  inFlight?: () => number
  /** Runs after each beat that reached Redis (the worker's orphan audit). */
  afterBeat?: () => Promise<void>
}

/**
 * `{prefix}{farm}:worker:<hostId>/<shard>` = JSON { hostId, shard, bootId, pid, host, startedAt, ... } with a
 * short TTL, rewritten every interval: while it is there and names this boot
 * id, the farm counts this process as alive and leaves its packets to it.
 */
export class Heartbeat {
  readonly intervalMs: number
  readonly ttlMs: number
  private readonly startedAt = Date.now()
  private readonly repeater: Repeater
  private beats = 0
  private failing = false
  /** The after-beat task in progress: never two at once. */
  private afterBeatRunning = false

  constructor(private readonly opts: HeartbeatOptions) {
    this.intervalMs = opts.intervalMs ?? 1000
    this.ttlMs = opts.ttlMs ?? 3000
    if (this.ttlMs <= this.intervalMs) throw new Error('the heartbeat TTL must be longer than its interval')
    this.repeater = new Repeater(this.intervalMs, () => this.tick())
  }

  /** Writes the first beat (a failure is logged, and retried on the interval), then keeps beating. */
  start(): Promise<void> {
    return this.repeater.start()
  }

  /** Stops beating and deletes the key if it is still this process's: the farm sees it gone at once. */
  async stop(): Promise<void> {
    await this.repeater.stop()
    await this.opts.coordination.stopBeat(this.opts.shard, this.opts.bootId).catch((err: unknown) => {
      this.opts.log.warn({ err }, 'could not delete the heartbeat; it expires by itself')
    })
  }

  private async tick(): Promise<void> {
    const { coordination, shard, bootId, log } = this.opts
    let previous: string
    try {
      previous = await coordination.beat({
        shard,
        bootId,
        pid: process.pid,
        host: hostname(),
        supervisorPid: process.ppid,
        startedAt: this.startedAt,
        beatAt: Date.now(),
        ttlMs: this.ttlMs,
        ...(this.opts.inFlight ? { inFlight: this.opts.inFlight() } : {}),
      })
    } catch (err) {
      if (!this.failing) log.warn({ err }, 'heartbeat failed (Redis unreachable?); retrying')
      this.failing = true
      return
    }
    if (this.failing) log.info('heartbeat written again')
    this.failing = false
    if (this.beats++ > 0 && previous !== '' && previous !== bootId) {
      log.error(
        { hostId: coordination.hostId, shard, other: previous },
        'another process writes the heartbeat of this shard: two supervisors with the same farm.hostId on one Redis?',
      )
    }
    // Detached from the beat: a slow task (a full audit of its records, a call timing out) must never
    // delay the next beat past the TTL, or this live worker would look dead to the sweeper.
    if (this.opts.afterBeat && !this.afterBeatRunning) {
      this.afterBeatRunning = true
      void this.opts
        .afterBeat()
        .catch((err: unknown) => log.warn({ err }, 'after-heartbeat task failed'))
        .finally(() => {
          this.afterBeatRunning = false
        })
    }
  }
}
