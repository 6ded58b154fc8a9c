import { type FarmCommand, positionals, print, printJson } from '../command.js'
import { duration, plural, table } from '../format.js'
import type { WorkerView, WorkersView } from '../views.js'

const USAGE = `Usage: ilp-farm workers

The live worker processes (GET /admin/workers): shard, boot id, pid, host, uptime,
the age of the last heartbeat, and which one holds the leader lease (it sweeps
expired packets of dead workers and announces routes). A worker whose heartbeat is
older than its TTL is dead and no longer listed.
`

export const workersCommand: FarmCommand = {
  name: 'workers',
  summary: ['workers', 'live workers, heartbeat ages, the leader'],
  usage: USAGE,
  async run(ctx) {
    positionals(ctx, [], 'workers')
    const view = await ctx.client.get<WorkersView>('/admin/workers')
    if (ctx.json) {
      printJson(view)
      return 0
    }
    print(`${plural(view.workers.length, 'live worker')}; leader: ${view.leader ?? 'NONE'}`)
    if (view.workers.length > 0) print(workersTable(view, ctx.now))
    return 0
  },
}

/** A heartbeat older than half its TTL: one or two beats missed, the process may be stuck or about to be declared dead. */
export function heartbeatLate(w: WorkerView): boolean {
  return w.ttlMs > 0 && w.heartbeatAgeMs > w.ttlMs / 2
}

export function workersTable(view: WorkersView, now: number): string {
  return table(
    ['shard', 'boot id', { header: 'pid', align: 'right' }, 'host', { header: 'up', align: 'right' }, { header: 'heartbeat', align: 'right' }, 'role'],
    view.workers.map((w) => [
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
