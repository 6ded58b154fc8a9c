import { Keys } from '../store/keys.js'
import type { Ledger } from '../store/ledger.js'
import type { OwnReservation } from '../store/own-packets.js'

export interface OrphanReport {
  examined: number
  refunded: number
  credited: number
}

/**
 * A worker settles its own orphans: records naming its boot id that none of
 * its packet flows holds (see src/store/own-packets.ts). They come from a
 * call whose answer never arrived (timeout, connection lost: the sender got
 * T00, the packet was never forwarded) or from a Redis that came back from
 * its append-only file with records whose settlement it lost. The sweeper
 * leaves a live worker's records alone, so nobody else would.
 *
 * A suspect is refunded by its attempt: the refund touches that reservation's
 * records only, whatever else holds the packet id now. After Redis came back,
 * the worker reads every record of its own through its owner index: an
 * incoming record is refunded, an outgoing record without its incoming one
 * is credited (its packet was fulfilled). A record whose packet id a flow of
 * this worker holds is left to that flow, checked in the same event-loop
 * turn as the call is queued.
 */
export async function resolveOrphans(ledger: Ledger): Promise<OrphanReport> {
  const own = ledger.own
  const full = own.fullAuditNeeded
  const suspects = new Map(own.suspects)
  own.fullAuditNeeded = false
  own.suspects.clear()
  const report: OrphanReport = { examined: 0, refunded: 0, credited: 0 }
  const kept: OwnReservation[] = []
  try {
    if (full) {
      // the index may have lost its last additions with the Redis that came back
      await ledger.reindex()
      await auditAll(ledger, report)
    }
    const refunds: Array<Promise<void>> = []
    for (const suspect of suspects.values()) {
      report.examined++
      if (own.isOpen(Keys.hotSetField(suspect.incomingAccount, suspect.packetId))) {
        kept.push(suspect)
        continue
      }
      refunds.push(
        ledger.refundRecord(suspect).then((outcome) => {
          if (outcome === 'ok') report.refunded++
        }),
      )
    }
    await Promise.all(refunds)
  } catch (err) {
    // Try again on the next heartbeat.
    own.fullAuditNeeded ||= full
    for (const suspect of suspects.values()) own.suspect(suspect)
    throw err
  }
  for (const suspect of kept) own.suspect(suspect)
  return report
}

async function auditAll(ledger: Ledger, report: OrphanReport): Promise<void> {
  const indexKey = ledger.keys.ownerAccounts(ledger.bootId)
  let cursor = '0'
  do {
    const [next, accounts] = await ledger.redis.sscan(indexKey, cursor, 'COUNT', 500)
    cursor = next
    for (const account of accounts) {
      const [incoming, outgoing] = await Promise.all([ledger.incomingRecords(account), ledger.outgoingRecords(account)])
      const settles: Array<Promise<void>> = []
      for (const e of incoming) {
        if (e.bootId !== ledger.bootId) continue
        report.examined++
        if (ledger.own.isOpen(Keys.hotSetField(e.incomingAccount, e.packetId))) continue
        settles.push(
          ledger.refundRecord(e).then((outcome) => {
            if (outcome === 'ok') report.refunded++
          }),
        )
      }
      for (const c of outgoing) {
        if (c.bootId !== ledger.bootId) continue
        report.examined++
        if (ledger.own.isOpen(Keys.hotSetField(c.incomingAccount, c.packetId))) continue
        settles.push(
          ledger.redis.hget(ledger.keys.inflight(c.incomingAccount), c.packetId).then(async (value) => {
            const pair = value?.split('|')
            // its incoming record is there: the packet is in flight, refunded with it
            if (pair && pair[1] === c.bootId && pair[2] === c.attempt) {
              if ((await ledger.refundRecord(c)) === 'ok') report.refunded++
            } else if ((await ledger.creditRecord(c)) === 'ok') report.credited++
          }),
        )
      }
      await Promise.all(settles)
    }
  } while (cursor !== '0')
}
