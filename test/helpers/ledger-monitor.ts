import { Redis } from 'ioredis'

/**
 * Watches every balance change the farm's scripts make, through Redis
 * MONITOR (which shows each command a Lua function runs, in execution
 * order): which packets were reserved, and for each settled one whether it
 * was committed (fulfill: the incoming record is deleted with no balance
 * written before it, lua/packet/fulfill-incoming.lua) or refunded (reject:
 * the sender's hot balance is written, then the incoming record deleted,
 * lua/packet/reject-incoming.lua). Needs amounts above 0, and a farm on one
 * Redis (MONITOR sees one node).
 */
export interface LedgerWatch {
  /** Packets (`<account>|<packetId>`) whose incoming record a prepare wrote. */
  readonly prepared: Set<string>
  readonly committed: Set<string>
  readonly refunded: Set<string>
  /** How many times each packet's incoming record was deleted (a packet settles at most once: always 1). */
  readonly settlements: Map<string, number>
  stop(): void
}

export async function watchLedger(redisUrl: string, prefix: string, _nextHop?: string): Promise<LedgerWatch> {
  const record = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\{acct:([^}]*)\\}:(inflight|credits)$`)
  const client = new Redis(redisUrl, { lazyConnect: true })
  client.on('error', () => undefined)
  await client.connect()
  const monitor = await client.monitor()
  monitor.on('error', () => undefined)
  const watch: LedgerWatch = {
    prepared: new Set(),
    committed: new Set(),
    refunded: new Set(),
    settlements: new Map(),
    stop() {
      monitor.disconnect()
      client.disconnect()
    },
  }
  /** The hot balance the current transition wrote (reset at each record write: a transition ends with one). */
  let hotWrite: string | undefined
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') return
    const [command, key, field] = args
    const cmd = command?.toUpperCase()
    if (!key || !field) return
    const match = record.exec(key)
    if (match) {
      const [, account, hash] = match
      const packet = `${account}|${field}`
      if (hash === 'inflight' && cmd === 'HSET') watch.prepared.add(packet)
      else if (hash === 'inflight' && cmd === 'HDEL') {
        watch.settlements.set(packet, (watch.settlements.get(packet) ?? 0) + 1)
        if (hotWrite === `${prefix}{acct:${account}}`) watch.refunded.add(packet)
        else watch.committed.add(packet)
      }
      hotWrite = undefined
    } else if ((cmd === 'HSET' || cmd === 'HINCRBY') && field.startsWith('hot:')) {
      hotWrite = key
    }
  })
  return watch
}
