import { Redis } from 'ioredis'
import { Keys } from '../../src/store/keys.js'

/**
 * Watches every balance change the farm's scripts make, through Redis
 * MONITOR (which shows each command a Lua function runs, in execution
 * order): which packets were reserved, and for each settled one whether it
 * was committed (fulfill: the next hop's cold balance is written, HSET or
 * HINCRBY, then the entry deleted) or refunded (reject: the sender's hot balance is written,
 * then the entry deleted). Needs amounts above 0 and a next hop without
 * maxBalance (every settlement then writes exactly one balance before HDEL).
 */
export interface LedgerWatch {
  /** hotSet fields (`<account>|<packetId>`) written by a prepare. */
  readonly prepared: Set<string>
  readonly committed: Set<string>
  readonly refunded: Set<string>
  /** How many times each field was deleted from the hotSet (a packet settles at most once: always 1). */
  readonly settlements: Map<string, number>
  stop(): void
}

export async function watchLedger(redisUrl: string, prefix: string, nextHop: string): Promise<LedgerWatch> {
  const hotSet = new Keys(prefix).hotSet
  const nextHopKey = `${prefix}{acct:${nextHop}}`
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
  let lastBalanceWrite: string | undefined
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (source !== 'lua') return
    const [command, key, field] = args
    const cmd = command?.toUpperCase()
    if (cmd === 'HSET' && key === hotSet && field) watch.prepared.add(field)
    else if ((cmd === 'HSET' || cmd === 'HINCRBY') && key?.startsWith(`${prefix}{acct:`) && (field === 'cold' || field?.startsWith('hot:'))) {
      lastBalanceWrite = key
    } else if (cmd === 'HDEL' && key === hotSet && field) {
      watch.settlements.set(field, (watch.settlements.get(field) ?? 0) + 1)
      if (lastBalanceWrite === nextHopKey) watch.committed.add(field)
      else watch.refunded.add(field)
      lastBalanceWrite = undefined
    }
  })
  return watch
}
