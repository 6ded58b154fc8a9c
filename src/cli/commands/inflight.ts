import { type AdminClient, FarmError } from '../admin-client.js'
import { type FarmCommand, positionals, print, printJson } from '../command.js'
import { plural, table, until } from '../format.js'
import type { InflightEntry, WorkersView } from '../views.js'

const USAGE = `Usage: ilp-farm inflight

The packets in flight (GET /admin/inflight): prepared and reserved, not yet settled,
with the incoming and outgoing account and amounts, the owning worker (shard and boot
id) and the time to expiry (by this machine's clock). Flags an entry past its expiry
and one whose owner has no live heartbeat (the leader's sweeper refunds those).
`

export const inflightCommand: FarmCommand = {
  name: 'inflight',
  summary: ['inflight', 'packets in flight: owners, time to expiry'],
  scopes: { '': ['read'] },
  usage: USAGE,
  async run(ctx) {
    positionals(ctx, [], 'inflight')
    const entries = await getInflight(ctx.client)
    if (ctx.json) {
      printJson(entries)
      return 0
    }
    const workers = await ctx.client.get<WorkersView>('/admin/workers')
    print(`${plural(entries.length, 'packet')} in flight`)
    if (entries.length > 0) print(inflightTable(entries, liveOwners(workers), ctx.now))
    return 0
  },
}

/** /admin/inflight, or /admin/hotset (the same list) on a farm from before the alias. */
export async function getInflight(client: AdminClient): Promise<InflightEntry[]> {
  try {
    return await client.get<InflightEntry[]>('/admin/inflight')
  } catch (err) {
    if (err instanceof FarmError && err.status === 404) return client.get<InflightEntry[]>('/admin/hotset')
    throw err
  }
}

export function liveOwners(workers: WorkersView): Set<string> {
  return new Set(workers.workers.map((w) => w.bootId))
}

/** What is odd about an entry: past its expiry (it should have been settled or refunded), an owner that is gone. */
export function entryFlags(e: InflightEntry, live: Set<string>, now: number): string[] {
  const flags: string[] = []
  if (e.expiresAtMs < now) flags.push('EXPIRED')
  if (e.bootId === '' || !live.has(e.bootId)) flags.push('OWNER DEAD')
  return flags
}

export function inflightTable(entries: InflightEntry[], live: Set<string>, now: number): string {
  const sorted = [...entries].sort((a, b) => a.expiresAtMs - b.expiresAtMs)
  return table(
    ['packet', 'from', { header: 'in', align: 'right' }, 'to', { header: 'out', align: 'right' }, 'owner', 'expires', 'flags'],
    sorted.map((e) => [
      e.packetId,
      e.incomingAccount,
      e.inAmount,
      e.outgoingAccount,
      e.outAmount,
      `${e.shard}/${e.bootId || '?'}`,
      until(e.expiresAtMs, now),
      entryFlags(e, live, now).join(', '),
    ]),
  )
}
