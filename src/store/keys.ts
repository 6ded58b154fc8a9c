/**
 * Redis key layout. Every key of one account shares the hash tag {acct:<id>};
 * the hotSet keys are farm-wide. See docs/ARCHITECTURE.md.
 */
export class Keys {
  readonly hotSet: string
  /** Set of the shard ids that ever sent a heartbeat (the heartbeat keys are found through it). */
  readonly workers: string
  /** Leader lease: the boot id of the worker holding it, with a TTL only the holder extends. */
  readonly leader: string

  constructor(readonly prefix: string) {
    this.hotSet = `${prefix}hotset`
    this.workers = `${prefix}workers`
    this.leader = `${prefix}leader`
  }

  /**
   * One account's record: JSON (its config with the token replaced by its
   * digest, origin, tombstone), in the account's hash slot. A deleted account
   * keeps its record as a tombstone, so its id is never silently reused.
   */
  accountRecord(id: string): string {
    return `${this.prefix}{acct:${id}}:cfg`
  }

  /** Token digest (hex) → account id: the bearer-token lookup of /rpc, one key per token in its own slot. */
  tokenIndex(digestHex: string): string {
    return `${this.prefix}{tok:${digestHex}}`
  }

  /** Sorted set of the live account ids (score 0, read by lex range): the cursor of GET /admin/accounts. */
  get accountIds(): string {
    return `${this.prefix}accounts:ids`
  }

  /** Set of the ids every worker keeps loaded: parents, peers, and accounts that carry routes or speak CCP. */
  get pinnedAccounts(): string {
    return `${this.prefix}accounts:pinned`
  }

  /** Stream of account changes (field `ids`): a worker whose subscriber reconnected catches up from it. */
  get accountChanges(): string {
    return `${this.prefix}accounts:changes`
  }

  /** Pub/sub channel: `<stream id> <account id>...` of changed accounts, or `*` (drop every cached account). */
  get accountsChanged(): string {
    return `${this.prefix}accounts:changed`
  }

  /** Accounts of a farm from before per-account records: a hash, id → record; migrated at start. */
  get legacyAccounts(): string {
    return `${this.prefix}accounts`
  }

  /** Heartbeat of the worker running shard `shard`: JSON (bootId, pid, host, startedAt...) with a short TTL. */
  worker(shard: number): string {
    return `${this.prefix}worker:${shard}`
  }

  account(id: string): string {
    // the same string each time: the packet path names a few accounts over and over
    let key = this.accountKeys.get(id)
    if (key === undefined) {
      key = `${this.prefix}{acct:${id}}`
      if (this.accountKeys.size < 10_000) this.accountKeys.set(id, key)
    }
    return key
  }

  private readonly accountKeys = new Map<string, string>()

  /**
   * Replay guard of an incoming Request-Id (async ILP-over-HTTP): a
   * string key set with NX before the reservation, kept for the packet's
   * lifetime plus a margin. Value: the Callback-Url of an async packet, or
   * `sync`. In the account's hash slot.
   */
  requestId(accountId: string, requestId: string): string {
    return `${this.prefix}{acct:${accountId}}:rid:${requestId}`
  }

  /**
   * How many Request-Ids the account claimed in the current window: INCR
   * with a PEXPIRE of the window on the first, in the account's hash slot.
   */
  requestIdCount(accountId: string): string {
    return `${this.prefix}{acct:${accountId}}:ridn`
  }

  /**
   * The user's own JSON-RPC URL (`ilp_setRpcUrl`): a string; absent
   * when none is set. Incoming prepares for the account go there as
   * `ilp_receivePrepare` calls. In the account's hash slot.
   */
  rpcUrl(accountId: string): string {
    return `${this.prefix}{acct:${accountId}}:rpcUrl`
  }

  /**
   * An async prepare the farm sent and still waits for: `req:<requestId>` →
   * `<ownerId>|<nextHopAccount>|<expiresAtMs>|<hotSetField>`, expiring with the packet.
   */
  asyncRequest(requestId: string): string {
    return `${this.prefix}req:${requestId}`
  }

  /** Pub/sub channel of one worker (owner id `<shard>-<bootId>`): replies to its async prepares. */
  replyChannel(ownerId: string): string {
    return `${this.prefix}replies:${ownerId}`
  }

  /** hotSet field of a packet: unique per incoming account and packet id. */
  static hotSetField(incomingAccount: string, packetId: string): string {
    return `${incomingAccount}|${packetId}`
  }
}
