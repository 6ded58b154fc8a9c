/** One reservation of this process: a packet id claimed for an incoming account, under an attempt of its own. */
export interface OwnReservation {
  incomingAccount: string
  packetId: string
  outgoingAccount: string
  /** Owner written into the records (the ledger's boot id, or the one the reservation named). */
  bootId: string
  attempt: string
  /**
   * false: this reservation wrote no outgoing record (one Redis, a next hop
   * without maxBalance), so its fulfill looks for none. True or absent (a
   * reservation read back from its records): it may have.
   */
  outgoingRecord?: boolean
}

/**
 * What one worker process knows of its own packets in flight: the
 * reservations its packet flows hold ("open", by field
 * `<incomingAccount>|<packetId>`; two copies of one packet may race, only one
 * is granted), and the suspects: reservations whose outcome it never learned
 * (a call failed or timed out after it may have reached Redis), whose records
 * may sit in Redis with no flow of this process to settle them.
 *
 * A record naming this worker's boot id that no open flow holds is an
 * **orphan**. The sweeper leaves the records of a live worker alone, so the
 * worker refunds its own orphans (src/farm/orphans.ts): each suspect by its
 * attempt, and all of them, through its own index of accounts, after Redis
 * came back (it may have come back from its append-only file).
 */
export class OwnPackets {
  /** Above this many suspects, one audit of every record of this process replaces them. */
  static readonly MAX_SUSPECTS = 10_000
  private readonly flows = new Map<string, number>()
  private readonly granted = new Map<string, OwnReservation>()
  readonly suspects = new Map<string, OwnReservation>()
  /** Check every record of this process, not just the suspects (Redis came back, or too many suspects). */
  fullAuditNeeded = false

  /** Before the prepare is sent: from then on a record under this field may be this flow's. */
  begin(field: string): void {
    this.flows.set(field, (this.flows.get(field) ?? 0) + 1)
  }

  /** The prepare was granted: the reservation the flow settles later. */
  grant(field: string, reservation: OwnReservation): void {
    this.granted.set(field, reservation)
  }

  /** The granted reservation under this field, while its flow is open. */
  reservation(field: string): OwnReservation | undefined {
    return this.granted.get(field)
  }

  /** The flow is over: its prepare was refused, or its packet is settled. */
  end(field: string, reservation?: OwnReservation): void {
    const count = this.flows.get(field) ?? 0
    if (count <= 1) this.flows.delete(field)
    else this.flows.set(field, count - 1)
    if (reservation && this.granted.get(field) === reservation) this.granted.delete(field)
  }

  /** Whether a flow of this process holds this attempt's records (it settles them itself). */
  holds(field: string, attempt: string): boolean {
    return this.granted.get(field)?.attempt === attempt
  }

  /** The granted reservations whose flows are open. */
  reservations(): IterableIterator<OwnReservation> {
    return this.granted.values()
  }

  isOpen(field: string): boolean {
    return this.flows.has(field)
  }

  get openCount(): number {
    return this.flows.size
  }

  suspect(reservation: OwnReservation): void {
    if (this.suspects.size >= OwnPackets.MAX_SUSPECTS) this.fullAuditNeeded = true
    else this.suspects.set(`${reservation.incomingAccount}|${reservation.packetId}|${reservation.attempt}`, reservation)
  }

  get auditNeeded(): boolean {
    return this.fullAuditNeeded || this.suspects.size > 0
  }
}
