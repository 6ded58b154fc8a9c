import calculateSlot from 'cluster-key-slot'
import type { Redis } from 'ioredis'
import { isCluster, type RedisClient } from './redis.js'

/**
 * A write Redis applied that no replica confirmed in time (`redis.durability:
 * replica`): should its master fail now, the write may be lost with it.
 */
export class DurabilityError extends Error {
  override readonly name = 'DurabilityError'
}

/** The connection that serves `key`: the client itself, or on a cluster the master of the key's slot. */
function nodeOf(client: RedisClient, key: string): Redis | undefined {
  if (!isCluster(client)) return client
  const owner = client.slots[calculateSlot(key)]?.[0]
  return client.nodes('master').find((node) => `${node.options.host}:${node.options.port}` === owner)
}

/**
 * Waits until at least one replica has every write made so far on the
 * connection that serves `key` (WAIT 1, on that very connection: a WAIT
 * covers the writes of the connection it is sent on). Throws
 * DurabilityError when none confirms within timeoutMs.
 */
export async function waitForReplica(client: RedisClient, key: string, timeoutMs: number): Promise<void> {
  const node = nodeOf(client, key)
  if (!node) throw new DurabilityError(`no master known for ${key}`)
  const acked = Number(await node.call('WAIT', '1', String(timeoutMs)))
  if (acked < 1) throw new DurabilityError(`no replica confirmed the write within ${timeoutMs} ms`)
}
