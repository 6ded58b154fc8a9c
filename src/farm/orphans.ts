import type { Ledger } from '../store/ledger.js'
import { Keys } from '../store/keys.js'
import { parseHotSetEntry } from '../store/ledger.js'

export interface OrphanReport {
  examined: number
  refunded: number
}

/**
 * A worker refunds its own orphans: hotSet entries naming its boot id that
 * none of its packet flows holds (see src/store/own-packets.ts). They come
 * from a prepare whose answer never arrived (timeout, connection lost: the
 * sender got T00, the packet was never forwarded) or from a Redis that came
 * back from its append-only file with an entry whose settlement it lost. The
 * sweeper leaves a live worker's entries alone, so nobody else would.
 *
 * Checks only the suspects, or the whole hotSet (HSCAN) when Redis came back
 * after a disconnection. Each refund is one reject guarded by the entry's
 * owner and expiry, queued in the same event-loop turn as the check that no
 * flow of this worker holds the field: a prepare of the same id that starts
 * later either runs after the refund or is refused as a duplicate, and is
 * never the one refunded.
 */
export async function resolveOrphans(ledger: Ledger): Promise<OrphanReport> {
  const own = ledger.own
  const full = own.fullAuditNeeded
  const suspects = new Map(own.suspects)
  own.fullAuditNeeded = false
  own.suspects.clear()
  const report: OrphanReport = { examined: 0, refunded: 0 }
  try {
    if (full) {
      let cursor = '0'
      do {
        const [next, flat] = await ledger.redis.hscan(ledger.keys.hotSet, cursor, 'COUNT', 1000)
        cursor = next
        const pairs: Array<[string, string]> = []
        for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i]!, flat[i + 1]!])
        await refundOrphans(ledger, pairs, report)
      } while (cursor !== '0')
    } else if (suspects.size > 0) {
      const fields = [...suspects.keys()]
      const values = await ledger.redis.hmget(ledger.keys.hotSet, ...fields)
      const pairs: Array<[string, string]> = []
      fields.forEach((field, i) => {
        const value = values[i]
        if (typeof value === 'string') pairs.push([field, value])
      })
      await refundOrphans(ledger, pairs, report)
    }
  } catch (err) {
    // Try again on the next heartbeat.
    own.fullAuditNeeded ||= full
    for (const [field, suspect] of suspects) if (!own.suspects.has(field)) own.suspect(field, suspect)
    throw err
  }
  return report
}

async function refundOrphans(ledger: Ledger, pairs: Array<[string, string]>, report: OrphanReport): Promise<void> {
  const refunds: Array<Promise<unknown>> = []
  for (const [field, value] of pairs) {
    report.examined++
    const entry = parseHotSetEntry(field, value)
    if (entry.bootId !== ledger.bootId || ledger.own.isOpen(Keys.hotSetField(entry.incomingAccount, entry.packetId))) continue
    refunds.push(
      ledger
        .reject(entry.incomingAccount, entry.packetId, entry.outgoingAccount, { bootId: entry.bootId, expiresAtMs: entry.expiresAtMs })
        .then((outcome) => {
          if (outcome === 'ok') report.refunded++
        }),
    )
  }
  await Promise.all(refunds)
}
