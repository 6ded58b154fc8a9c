import type { Logger } from 'pino'
import { FARM_TAG, type Keys } from './keys.js'
import { isCluster, type RedisClient } from './redis.js'

/** How long one worker may take renaming; the others wait at most this long for it. */
const MIGRATION_LOCK_MS = 60_000

/**
 * Renames the farm-wide keys of a farm from before they shared the {farm}
 * hash tag (so that on Redis Cluster they share a slot). One worker does it
 * under a lock, the others wait; a key is renamed only when its new name is
 * free, so running it again changes nothing. All workers of a farm are
 * upgraded together: an old worker would go on writing the old names.
 * Nothing to do on a cluster (a RENAME across slots is refused there): the
 * farms from before the tag all ran on one Redis.
 */
export async function renameFarmKeys(redis: RedisClient, keys: Keys, log: Logger): Promise<void> {
  if (isCluster(redis)) return
  const pairs = keys.renamedFarmKeys()
  const found = await redis.exists(...pairs.map(([from]) => from), keys.legacyHotSet)
  if (found === 0) return
  const lock = `${keys.prefix}${FARM_TAG}:migrating`
  if ((await redis.set(lock, String(process.pid), 'PX', MIGRATION_LOCK_MS, 'NX')) === null) {
    const deadline = Date.now() + MIGRATION_LOCK_MS
    while ((await redis.exists(lock)) === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
    return
  }
  try {
    for (const [from, to] of pairs) {
      if ((await redis.exists(from)) === 0) continue
      if ((await redis.exists(to)) === 1) {
        log.error({ from, to }, 'both the old and the new name of a farm key exist: left as they are (is a worker of the old version still running?)')
        continue
      }
      await redis.rename(from, to)
      log.info({ from, to }, 'renamed a farm key to its {farm}-tagged name')
    }
    await splitLegacyHotSet(redis, keys, log)
  } finally {
    await redis.del(lock)
  }
}

/**
 * Packets in flight of a farm from before per-account records: each entry of
 * the one hotSet hash becomes its two records (lua/lib/entry.lua), in the
 * slots of its two accounts, under its owner's index, and the sweeper settles
 * them like any other once their owner is gone. One MULTI per packet (such a
 * farm runs on a single Redis, where a MULTI may span slots).
 */
async function splitLegacyHotSet(redis: RedisClient, keys: Keys, log: Logger): Promise<void> {
  let cursor = '0'
  let moved = 0
  do {
    const [next, flat] = await redis.hscan(keys.legacyHotSet, cursor, 'COUNT', 500)
    cursor = next
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const field = flat[i]!
      const parts = flat[i + 1]!.split('|')
      if (parts.length === 6) parts.splice(1, 0, '') // written before owners were recorded
      const [shard, owner, expiresAt, inAmount, outgoing, outAmount, headroom] = parts
      const sep = field.indexOf('|')
      const incoming = field.slice(0, sep)
      const packetId = field.slice(sep + 1)
      const bootId = owner || 'legacy'
      await redis
        .multi()
        .hset(keys.inflight(incoming), packetId, [shard, bootId, 'legacy', expiresAt, inAmount, outgoing, outAmount].join('|'))
        .hset(keys.credits(outgoing!), field, [bootId, 'legacy', expiresAt, outAmount, headroom].join('|'))
        .sadd(keys.ownerAccounts(bootId), incoming, outgoing!)
        .sadd(keys.owners, bootId)
        .hdel(keys.legacyHotSet, field)
        .exec()
      moved++
    }
  } while (cursor !== '0')
  if (moved > 0) log.info({ packets: moved }, 'moved packets in flight from the one hotSet hash to per-account records')
}
