import type { Keys } from '../../src/store/keys.js'
import { incomingRecordValue, Ledger, outgoingRecordValue } from '../../src/store/ledger.js'
import type { RedisClient } from '../../src/store/redis.js'

/**
 * Records of packets in flight left in Redis, farm-wide: incoming records
 * (reserved, not settled), outgoing records (waiting for their credit or
 * release) and credits owed to a next hop that no transfer has moved yet,
 * found through the owners' indexes as the sweeper finds them.
 */
export async function recordsLeft(client: RedisClient, prefix: string): Promise<number> {
  const ledger = new Ledger(client, prefix)
  const [incoming, outgoing, accounts] = await Promise.all([ledger.hotSet(), ledger.pendingCredits(), ledger.accountsWithRecords()])
  const owed = await Promise.all(accounts.map((a) => ledger.owedBy(a)))
  return incoming.length + outgoing.length + owed.flat().length
}

export interface PlantedPacket {
  incomingAccount: string
  packetId: string
  outgoingAccount: string
  bootId: string
  shard: number
  expiresAtMs: number
  inAmount: string
  outAmount: string
}

/** Writes a packet's two records and its owner's index as its worker would have (for tests of what a crash leaves). */
export async function plantPacket(client: RedisClient, keys: Keys, p: PlantedPacket): Promise<void> {
  await client.hset(keys.inflight(p.incomingAccount), p.packetId, incomingRecordValue({ ...p, attempt: 'planted' }))
  await client.hset(keys.credits(p.outgoingAccount), `${p.incomingAccount}|${p.packetId}`, outgoingRecordValue({ ...p, attempt: 'planted', headroom: '0' }))
  await client.sadd(keys.ownerAccounts(p.bootId), p.incomingAccount, p.outgoingAccount)
  await client.sadd(keys.owners, p.bootId)
}

/** Removes a planted packet's records. */
export async function unplantPacket(client: RedisClient, keys: Keys, p: Pick<PlantedPacket, 'incomingAccount' | 'packetId' | 'outgoingAccount'>): Promise<void> {
  await client.hdel(keys.inflight(p.incomingAccount), p.packetId)
  await client.hdel(keys.credits(p.outgoingAccount), `${p.incomingAccount}|${p.packetId}`)
}
