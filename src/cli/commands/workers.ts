import { type FarmCommand, positionals, print, printJson } from '../command.js'
import { duration, plural, table } from '../format.js'
import type { WorkerView, WorkersView } from '../views.js'

const USAGE = `Usage: ilp-farm workers

The live worker processes (GET /admin/workers) of every host sharing the farm's
Redis, by host id (farm.hostId) and shard: boot id, pid, machine, uptime, the age
of the last heartbeat, and which one holds the leader lease (one for the whole
farm: it sweeps expired packets of dead workers and announces routes). A worker
whose heartbeat is older than its TTL is dead and no longer listed.
`

export const workersCommand: FarmCommand = {
  name: 'workers',
  summary: ['workers', 'live workers of every host, heartbeat ages, the leader'],
  scopes: { '': ['read'] },
  usage: USAGE,
  async run(ctx) {
    positionals(ctx, [], 'workers')
    const view = await ctx.client.get<WorkersView>('/admin/workers')
    if (ctx.json) {
      printJson(view)
      return 0
    }
    print(`${plural(view.workers.length, 'live worker')} on ${plural(view.hosts.length, 'host')}; leader: ${leaderLine(view)}`)
    if (view.workers.length > 0) print(workersTable(view, ctx.now))
    return 0
  },
}

/** A heartbeat older than half its TTL: one or two beats missed, the process may be stuck or about to be declared dead. */
export function heartbeatLate(w: WorkerView): boolean {
  return w.ttlMs > 0 && w.heartbeatAgeMs > w.ttlMs / 2
}

/** The leader's boot id and, when known, its host id. */
export function leaderLine(view: WorkersView): string {
  if (view.leader === null) return 'NONE'
  return view.leaderHostId ? `${view.leader} on ${view.leaderHostId}` : view.leader
}

export function workersTable(view: WorkersView, now: number): string {
  return table(
    ['host id', 'shard', 'boot id', { header: 'pid', align: 'right' }, 'machine', { header: 'up', align: 'right' }, { header: 'heartbeat', align: 'right' }, 'role'],
    view.workers.map((w) => [
      w.hostId,
      String(w.shard),
      w.bootId,
      String(w.pid),
      w.host,
      duration(now - w.startedAt),
      `${duration(w.heartbeatAgeMs)} ago${heartbeatLate(w) ? ' (LATE)' : ''}`,
      w.leader ? 'leader' : '',
    ]),
  )
}
