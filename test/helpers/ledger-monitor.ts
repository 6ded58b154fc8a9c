import { Redis } from 'ioredis'

/**
 * Watches every balance change the farm's scripts make, through Redis
 * MONITOR (which shows each command a Lua function runs, in execution
 * order): which packets were reserved (a prepare's first write is the
 * incoming record, HSETNX, deleted again at once if the prepare is refused,
 * lua/packet/prepare-incoming.lua), and for each settled one whether it was
 * committed (fulfill: the incoming record is read, then deleted with no
 * balance written between, lua/packet/fulfill-incoming.lua) or refunded
 * (reject: the record is read, the sender's hot balance written, then the
 * record deleted, lua/packet/reject-incoming.lua). Needs amounts above 0,
 * and a farm on one Redis (MONITOR sees one node).
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
  /** The hot balance written since the last command on a record (a refund writes one between its record's read and delete). */
  let hotWrite: string | undefined
  /** The record a prepare has just written, when the next record command is its refusal's delete. */
  let justWritten: string | undefined
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') return
    const [command, key, field] = args
    const cmd = command?.toUpperCase()
    if (!key || !field) return
    const match = record.exec(key)
    if (match) {
      const [, account, hash] = match
      const packet = `${account}|${field}`
      const refused = justWritten === packet
      justWritten = undefined
      if (hash === 'inflight' && cmd === 'HSETNX') {
        watch.prepared.add(packet)
        justWritten = packet
      } else if (hash === 'inflight' && cmd === 'HDEL' && refused) {
        // a refused prepare: its record gone again, nothing reserved or settled
        watch.prepared.delete(packet)
      } else if (hash === 'inflight' && cmd === 'HDEL') {
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
