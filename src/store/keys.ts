/**
 * Redis key layout. Every key of one account shares the hash tag {acct:<id>};
 * the hotSet keys are farm-wide. See docs/ARCHITECTURE.md.
 */
export class Keys {
  readonly hotSet: string
  readonly hotSetExpiry: string

  constructor(readonly prefix: string) {
    this.hotSet = `${prefix}hotset`
    this.hotSetExpiry = `${prefix}hotset:exp`
  }

  account(id: string): string {
    return `${this.prefix}{acct:${id}}`
  }

  /** hotSet field of a packet: unique per incoming account and packet id. */
  static hotSetField(incomingAccount: string, packetId: string): string {
    return `${incomingAccount}|${packetId}`
  }
}
