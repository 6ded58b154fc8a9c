import type { RedisClient } from './redis.js'
import { Keys } from './keys.js'
import { LuaScript } from './lua-script.js'

/** What a worker writes in its heartbeat key (JSON). */
export interface WorkerHeartbeat {
  /** The supervisor's host id (`farm.hostId`): with the shard, the worker's id farm-wide. */
  hostId: string
  shard: number
  bootId: string
  pid: number
  /** The machine's hostname (os.hostname()). */
  host: string
  /** The pid of its supervisor (its parent process): workers of one supervisor are siblings. */
  supervisorPid?: number
  /** When the process started (ms since the epoch, its own clock). */
  startedAt: number
  /** When it wrote this beat (its own clock). */
  beatAt: number
  /** The TTL it gave the key: the age of a beat is ttlMs − PTTL, measured on Redis' clock. */
  ttlMs: number
  /** Packets the worker held in flight when it beat (the farm's in-flight gauge sums them). */
  inFlight?: number
}

/** What a worker passes to beat(): its Coordination adds the host id. */
export type Beat = Omit<WorkerHeartbeat, 'hostId'>

export interface LiveWorker extends WorkerHeartbeat {
  /** Time since the last beat, by Redis' clock. */
  heartbeatAgeMs: number
}

/** One host (supervisor) of the farm as GET /admin/workers sums it up. */
export interface HostSummary {
  hostId: string
  /** Its live workers. */
  workers: number
  /** One of them holds the leader lease. */
  leader: boolean
}

export interface FarmStatus {
  /** Boot id of the leader, null when nobody holds the lease. */
  leader: string | null
  /** Host id of the leader, null when nobody holds the lease (or its heartbeat is gone). */
  leaderHostId: string | null
  /** The hosts with live workers, by host id. */
  hosts: HostSummary[]
  /** The live workers of every host, by host id then shard. */
  workers: Array<LiveWorker & { leader: boolean }>
}

/**
 * The live workers of every host, by worker id (`<hostId>/<shard>`). A
 * number looks up a shard of the host the Coordination speaks for.
 */
export class LiveWorkers extends Map<string, LiveWorker> {
  constructor(readonly hostId: string) {
    super()
  }

  override get(id: string | number): LiveWorker | undefined {
    return super.get(typeof id === 'number' ? Keys.workerId(this.hostId, id) : id)
  }

  override has(id: string | number): boolean {
    return super.has(typeof id === 'number' ? Keys.workerId(this.hostId, id) : id)
  }
}

/** Host id of a Coordination given none (a single host, as in-process tests run it). */
export const LOCAL_HOST_ID = 'local'

let scripts: { heartbeat: LuaScript; lease: LuaScript } | undefined
const loadScripts = () =>
  (scripts ??= { heartbeat: new LuaScript('coordination/heartbeat.lua'), lease: new LuaScript('coordination/lease.lua') })

function parseHeartbeat(value: string | null): WorkerHeartbeat | undefined {
  if (value === null) return undefined
  try {
    const parsed = JSON.parse(value) as Partial<WorkerHeartbeat>
    if (typeof parsed.bootId !== 'string' || typeof parsed.shard !== 'number' || typeof parsed.hostId !== 'string') return undefined
    return {
      hostId: parsed.hostId,
      shard: parsed.shard,
      bootId: parsed.bootId,
      pid: Number(parsed.pid),
      host: String(parsed.host),
      ...(typeof parsed.supervisorPid === 'number' ? { supervisorPid: parsed.supervisorPid } : {}),
      startedAt: Number(parsed.startedAt),
      beatAt: Number(parsed.beatAt),
      ttlMs: Number(parsed.ttlMs),
      ...(typeof parsed.inFlight === 'number' ? { inFlight: parsed.inFlight } : {}),
    }
  } catch {
    return undefined
  }
}

/**
 * The Redis side of the farm's membership: worker heartbeats and the leader
 * lease (lua/coordination/). One instance speaks for one host (`hostId`):
 * its beats name that host; what it reads covers every host. Stateless: the
 * timers are in src/farm/.
 */
export class Coordination {
  constructor(
    readonly redis: RedisClient,
    readonly keys: Keys,
    readonly hostId: string = LOCAL_HOST_ID,
  ) {}

  /** Writes this worker's heartbeat with its TTL. Returns the boot id the key named before ('' if none). */
  async beat(info: Beat): Promise<string> {
    const id = Keys.workerId(this.hostId, info.shard)
    const value: WorkerHeartbeat = { hostId: this.hostId, ...info }
    const previous = await loadScripts().heartbeat.run(
      this.redis,
      [this.keys.workerById(id), this.keys.workers],
      ['beat', id, info.bootId, JSON.stringify(value), info.ttlMs],
    )
    return String(previous)
  }

  /** Deletes the heartbeat if it is still this boot id's (a clean stop): the farm sees the worker gone at once. */
  async stopBeat(shard: number, bootId: string): Promise<boolean> {
    const id = Keys.workerId(this.hostId, shard)
    return (await loadScripts().heartbeat.run(this.redis, [this.keys.workerById(id), this.keys.workers], ['stop', id, bootId])) === 1
  }

  /** The workers of every host whose heartbeat has not expired, by worker id (`<hostId>/<shard>`). */
  async liveWorkers(): Promise<LiveWorkers> {
    const ids = (await this.redis.smembers(this.keys.workers)).filter((id) => Keys.parseWorkerId(id) !== undefined)
    const live = new LiveWorkers(this.hostId)
    if (ids.length === 0) return live
    const pipeline = this.redis.pipeline()
    for (const id of ids) pipeline.get(this.keys.workerById(id)).pttl(this.keys.workerById(id))
    const replies = (await pipeline.exec()) ?? []
    ids.forEach((id, i) => {
      const [getErr, value] = replies[2 * i] ?? [null, null]
      const [pttlErr, pttl] = replies[2 * i + 1] ?? [null, -2]
      if (getErr) throw getErr
      if (pttlErr) throw pttlErr
      const beat = parseHeartbeat(value as string | null)
      if (!beat || typeof pttl !== 'number' || pttl <= 0) return
      live.set(id, { ...beat, heartbeatAgeMs: Math.max(0, beat.ttlMs - pttl) })
    })
    return live
  }

  /** The live workers of one host (this one by default), by shard. */
  async liveWorkersOf(hostId = this.hostId): Promise<LiveWorker[]> {
    return [...(await this.liveWorkers()).values()].filter((w) => w.hostId === hostId).sort((a, b) => a.shard - b.shard)
  }

  /**
   * The live workers by boot id (the owner named in their packets' records): the
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

  /** The operator's view (GET /admin/workers): the live workers of every host, their heartbeat age, the hosts, the leader. */
  async status(): Promise<FarmStatus> {
    const [live, leader] = await Promise.all([this.liveWorkers(), this.leader()])
    const workers = [...live.values()]
      .sort((a, b) => (a.hostId === b.hostId ? a.shard - b.shard : a.hostId < b.hostId ? -1 : 1))
      .map((w) => ({ ...w, leader: w.bootId === leader }))
    const hosts = new Map<string, HostSummary>()
    for (const w of workers) {
      const host = hosts.get(w.hostId) ?? { hostId: w.hostId, workers: 0, leader: false }
      host.workers++
      host.leader ||= w.leader
      hosts.set(w.hostId, host)
    }
    return {
      leader: leader ?? null,
      leaderHostId: workers.find((w) => w.leader)?.hostId ?? null,
      hosts: [...hosts.values()],
      workers,
    }
  }
}

/** A farm-wide job only the leader runs: started when this worker takes the lease, stopped when it loses it. */
export interface LeaderDuty {
  start(): void
  stop(): Promise<void>
}
