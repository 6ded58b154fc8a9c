import type { Redis } from 'ioredis'
import type { Keys } from './keys.js'
import { LuaScript } from './lua-script.js'

/** What a worker writes in its heartbeat key (JSON). */
export interface WorkerHeartbeat {
  shard: number
  bootId: string
  pid: number
  host: string
  /** When the process started (ms since the epoch, its own clock). */
  startedAt: number
  /** When it wrote this beat (its own clock). */
  beatAt: number
  /** The TTL it gave the key: the age of a beat is ttlMs − PTTL, measured on Redis' clock. */
  ttlMs: number
}

export interface LiveWorker extends WorkerHeartbeat {
  /** Time since the last beat, by Redis' clock. */
  heartbeatAgeMs: number
}

let scripts: { heartbeat: LuaScript; lease: LuaScript } | undefined
const loadScripts = () =>
  (scripts ??= { heartbeat: new LuaScript('coordination/heartbeat.lua'), lease: new LuaScript('coordination/lease.lua') })

function parseHeartbeat(value: string | null): WorkerHeartbeat | undefined {
  if (value === null) return undefined
  try {
    const parsed = JSON.parse(value) as Partial<WorkerHeartbeat>
    if (typeof parsed.bootId !== 'string' || typeof parsed.shard !== 'number') return undefined
    return {
      shard: parsed.shard,
      bootId: parsed.bootId,
      pid: Number(parsed.pid),
      host: String(parsed.host),
      startedAt: Number(parsed.startedAt),
      beatAt: Number(parsed.beatAt),
      ttlMs: Number(parsed.ttlMs),
    }
  } catch {
    return undefined
  }
}

/**
 * The Redis side of the farm's membership: worker heartbeats and the leader
 * lease (lua/coordination/). Stateless: the timers are in src/farm/.
 */
export class Coordination {
  constructor(
    readonly redis: Redis,
    readonly keys: Keys,
  ) {}

  /** Writes this worker's heartbeat with its TTL. Returns the boot id the key named before ('' if none). */
  async beat(info: WorkerHeartbeat): Promise<string> {
    const previous = await loadScripts().heartbeat.run(
      this.redis,
      [this.keys.worker(info.shard), this.keys.workers],
      ['beat', info.shard, info.bootId, JSON.stringify(info), info.ttlMs],
    )
    return String(previous)
  }

  /** Deletes the heartbeat if it is still this boot id's (a clean stop): the farm sees the worker gone at once. */
  async stopBeat(shard: number, bootId: string): Promise<boolean> {
    return (await loadScripts().heartbeat.run(this.redis, [this.keys.worker(shard), this.keys.workers], ['stop', shard, bootId])) === 1
  }

  /** The workers whose heartbeat has not expired, by shard. */
  async liveWorkers(): Promise<Map<number, LiveWorker>> {
    const shards = (await this.redis.smembers(this.keys.workers)).map(Number).filter(Number.isInteger)
    const live = new Map<number, LiveWorker>()
    if (shards.length === 0) return live
    const pipeline = this.redis.pipeline()
    for (const shard of shards) pipeline.get(this.keys.worker(shard)).pttl(this.keys.worker(shard))
    const replies = (await pipeline.exec()) ?? []
    shards.forEach((shard, i) => {
      const [getErr, value] = replies[2 * i] ?? [null, null]
      const [pttlErr, pttl] = replies[2 * i + 1] ?? [null, -2]
      if (getErr) throw getErr
      if (pttlErr) throw pttlErr
      const beat = parseHeartbeat(value as string | null)
      if (!beat || typeof pttl !== 'number' || pttl <= 0) return
      live.set(shard, { ...beat, shard, heartbeatAgeMs: Math.max(0, beat.ttlMs - pttl) })
    })
    return live
  }

  /**
   * The live workers by boot id (the owner id of their hotSet entries): the
   * sweeper's question "is this entry's owner alive?" is one lookup, whatever
   * host or shard the owner ran as.
   */
  async liveOwners(): Promise<Map<string, LiveWorker>> {
    return new Map([...(await this.liveWorkers()).values()].map((w) => [w.bootId, w]))
  }

  /** Takes the lease if free, extends it if `bootId` holds it. Returns the holder ('' for nobody). */
  async acquireLease(bootId: string, ttlMs: number): Promise<string> {
    return String(await loadScripts().lease.run(this.redis, [this.keys.leader], ['acquire', bootId, ttlMs]))
  }

  /** Drops the lease if `bootId` holds it. */
  async releaseLease(bootId: string): Promise<void> {
    await loadScripts().lease.run(this.redis, [this.keys.leader], ['release', bootId])
  }

  /** Boot id of the current leader, if any. */
  async leader(): Promise<string | undefined> {
    return (await this.redis.get(this.keys.leader)) ?? undefined
  }

  /** The operator's view (GET /admin/workers): the live workers, their heartbeat age, the leader. */
  async status(): Promise<{ leader: string | null; workers: Array<LiveWorker & { leader: boolean }> }> {
    const [live, leader] = await Promise.all([this.liveWorkers(), this.leader()])
    return {
      leader: leader ?? null,
      workers: [...live.values()].sort((a, b) => a.shard - b.shard).map((w) => ({ ...w, leader: w.bootId === leader })),
    }
  }
}
