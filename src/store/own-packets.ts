/**
 * A prepare whose outcome this worker never learned (the call failed or timed
 * out after it may have reached Redis, or Redis answered DUPLICATE for an id
 * this worker holds no packet under): the hotSet may hold an entry naming this
 * worker that no packet flow of it will ever settle.
 */
export interface Suspect {
  incomingAccount: string
  packetId: string
}

/**
 * What one worker process knows of its own hotSet entries: the fields its
 * packet flows have claimed and not yet settled ("open", counted, since two
 * copies of one packet may be in flight), and the suspects to check.
 *
 * An entry naming this worker's boot id that is not open is an **orphan**: its
 * prepare reached Redis but the flow gave up on it (the sender got T00), or
 * Redis came back from its append-only file with an entry whose settlement it
 * lost. The sweeper leaves the entries of a live worker alone, so the worker
 * refunds its own orphans (src/farm/orphans.ts).
 */
export class OwnPackets {
  /** Above this many suspects, one scan of the whole hotSet replaces them. */
  static readonly MAX_SUSPECTS = 10_000
  private readonly open = new Map<string, number>()
  readonly suspects = new Map<string, Suspect>()
  /** Check every entry of the hotSet, not just the suspects (Redis came back, or too many suspects). */
  fullAuditNeeded = false

  /** Before the prepare is sent: from then on an entry under this field may be this flow's. */
  begin(field: string): void {
    this.open.set(field, (this.open.get(field) ?? 0) + 1)
  }

  /** The flow is over: its prepare was refused, or its packet is settled. */
  end(field: string): void {
    const count = this.open.get(field) ?? 0
    if (count <= 1) this.open.delete(field)
    else this.open.set(field, count - 1)
  }

  isOpen(field: string): boolean {
    return this.open.has(field)
  }

  get openCount(): number {
    return this.open.size
  }

  suspect(field: string, suspect: Suspect): void {
    if (this.suspects.size >= OwnPackets.MAX_SUSPECTS) this.fullAuditNeeded = true
    else this.suspects.set(field, suspect)
  }

  get auditNeeded(): boolean {
    return this.fullAuditNeeded || this.suspects.size > 0
  }
}
