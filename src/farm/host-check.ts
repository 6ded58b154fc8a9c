import { hostname } from 'node:os'
import type { Logger } from 'pino'
import type { Coordination, LiveWorker } from '../store/coordination.js'

/** A supervisor started with a `farm.hostId` whose workers are live under another supervisor. */
export class HostIdInUseError extends Error {
  constructor(
    readonly hostId: string,
    readonly others: LiveWorker[],
  ) {
    const w = others[0]!
    super(
      `farm.hostId "${hostId}" is in use: ${others.length} live worker${others.length === 1 ? '' : 's'} of that host id ` +
        `run under another supervisor (pid ${w.supervisorPid ?? '?'} on ${w.host}). Give each supervisor that shares this Redis ` +
        'its own farm.hostId, or stop the other one first.',
    )
    this.name = 'HostIdInUseError'
  }
}

/** A live worker of this worker's own supervisor (or, in-process, of this very process): same machine, same parent. */
function sibling(w: LiveWorker): boolean {
  return w.host === hostname() && w.supervisorPid === process.ppid
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * Before a worker's first beat: if workers of its host id are live under
 * another supervisor, it must not start, or the two would overwrite each
 * other's heartbeats and each would look dead to the farm by turns. Beats
 * left by a supervisor that died (a restart after a crash) expire within
 * their TTL: those are waited out. A beat still there after its TTL was
 * rewritten, so its writer is alive: HostIdInUseError.
 */
export async function ensureHostIdFree(coordination: Coordination, log: Logger): Promise<void> {
  const others = async () => (await coordination.liveWorkersOf()).filter((w) => !sibling(w))
  let found = await others()
  if (found.length === 0) return
  const deadline = Date.now() + Math.max(...found.map((w) => w.ttlMs - w.heartbeatAgeMs)) + 250
  log.warn({ hostId: coordination.hostId, workers: found.length }, 'live heartbeats of this host id from another supervisor: waiting for them to expire')
  while (found.length > 0 && Date.now() < deadline) {
    await sleep(Math.min(100, Math.max(1, deadline - Date.now())))
    found = await others()
  }
  if (found.length > 0) throw new HostIdInUseError(coordination.hostId, found)
}
