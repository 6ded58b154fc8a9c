/**
 * The hash tag of every farm-wide key: on Redis Cluster they share one slot,
 * so a script may touch several of them (the routing table and CCP state, a
 * heartbeat and the worker set, the metrics hash and a flush marker).
 */
export const FARM_TAG = '{farm}'

/** The keys of one account that the packet transitions take, all in the account's hash slot. */
export interface AccountPacketKeys {
  account: string
  inflight: string
  credits: string
  /** The account's sending-rate window (second, packets, amount): its maxPacketsPerSecond and maxAmountPerSecond. */
  rate: string
  /**
   * What the account, as a sender, owes its next hops for fulfilled packets
   * without an outgoing record (a cluster's), and the transfers moving it
   * to them: a hash, `o:<out>` owed, `t:<out>` `<seq>|<amount>` in
   * progress, `n:<out>` the last transfer number (lua/packet/transfer-begin.lua).
   */
  owed: string
  /** The last transfer applied to the account from each incoming account: a hash, `<in>` → seq (lua/packet/transfer-apply.lua). */
  received: string
}

/**
 * Every Redis key and channel the farm uses, named here and nowhere else.
 * Every key of one account shares the hash tag {acct:<id>}; farm-wide keys
 * share {farm}; a key that no script combines with another (a ticket, an
 * async request, a token's index entry) has a slot of its own. See the key
 * table in docs/ARCHITECTURE.md.
 */
export class Keys {
  /** The one hash of packets in flight of farms from before per-account records: migrated at start. */
  readonly legacyHotSet: string
  /** Set of the boot ids of worker processes that may own packet records (the sweeper's list of owners). */
  readonly owners: string
  /**
   * Set of the worker ids (`<hostId>/<shard>`, Keys.workerId) that ever sent
   * a heartbeat, of every host: the heartbeat keys are found through it. (A
   * bare shard id in it is from before host ids, and is passed over.)
   */
  readonly workers: string
  /** Leader lease: the boot id of the worker holding it, with a TTL only the holder extends. */
  readonly leader: string
  /** The routing table: prefix → candidates (JSON). */
  readonly routes: string
  /** Farm-wide outcome counters of route candidates. */
  readonly routeStats: string
  /** CCP: the farm's own table (id, epoch, secret), what it advertises, the control and receive state per peer. */
  readonly ccpTable: string
  readonly ccpAdvertised: string
  readonly ccpControl: string
  readonly ccpReceived: string
  /** Settlement requests (stream) and the last entry the webhook acknowledged. */
  readonly settlements: string
  readonly settlementsWebhook: string
  /** The ids of the settlement requests relayed into the stream (sorted set, the newest kept): a relay appends each once. */
  readonly settlementsRelayed: string
  /** Accounts whose settlement trigger was checked recently (sorted set → ms, Redis' clock): the leader relays what they left. */
  readonly settlementsTouched: string
  /** Farm-wide metrics: one hash of ever-growing counters. */
  readonly metrics: string
  /** Sorted set of recently active accounts (score: time of their last packet). */
  readonly activeAccounts: string
  /**
   * Pub/sub channel (sharded): a route prefix whose candidates changed, or `*`. In the {farm}
   * slot: the routing scripts publish on it beside the routing keys, as a cluster requires.
   */
  readonly routesChanged: string

  constructor(readonly prefix: string) {
    const farm = `${prefix}${FARM_TAG}:`
    this.legacyHotSet = `${farm}hotset`
    this.owners = `${farm}owners`
    this.workers = `${farm}workers`
    this.leader = `${farm}leader`
    this.routes = `${farm}routes`
    this.routeStats = `${farm}routes:stats`
    this.ccpTable = `${farm}ccp:table`
    this.ccpAdvertised = `${farm}ccp:adv`
    this.ccpControl = `${farm}ccp:control`
    this.ccpReceived = `${farm}ccp:recv`
    this.settlements = `${farm}settlements`
    this.settlementsWebhook = `${farm}settlements:webhook`
    this.settlementsRelayed = `${farm}settlements:ids`
    this.settlementsTouched = `${farm}settlements:touched`
    this.metrics = `${farm}metrics`
    this.activeAccounts = `${farm}accounts:active`
    this.routesChanged = `${farm}routes:changed`
  }

  /** The last metrics flush of one worker process that Redis applied (written in the same MULTI as the counters). */
  metricsFlushed(bootId: string): string {
    return `${this.prefix}${FARM_TAG}:metrics:flushed:${bootId}`
  }

  /** A dashboard login session, by the SHA-256 of its id (the cookie holds the id). */
  dashboardSession(digestHex: string): string {
    return `${this.prefix}dashboard:session:${digestHex}`
  }

  /** A deposit's or withdrawal's Idempotency-Key (by its SHA-256): what it did, in the account's slot. */
  idempotency(accountId: string, keyDigestHex: string): string {
    return `${this.account(accountId)}:idem:${keyDigestHex}`
  }

  /**
   * An account's settlement requests not yet relayed to the farm's stream: a
   * hash, request id → `<seq>|<amount>|<balance>|<threshold>|<settleTo>|<requestedAtMs>`,
   * in the account's hash slot (lua/accounts/settlement.lua).
   */
  settleRequests(accountId: string): string {
    return `${this.account(accountId)}:settle`
  }

  /** An unredeemed invitation ticket, by the SHA-256 of the ticket. */
  ticket(digestHex: string): string {
    return `${this.prefix}ticket:${digestHex}`
  }


  /** The HMAC key of stateless sign-up challenges when the config gives none: made once by the first worker (SET NX). */
  get signupHmacKey(): string {
    return `${this.prefix}signup:hmac-key`
  }

  /** An account's payment history, newest last: entry id → its start (ms × 1000 + a tiebreak); bounded. */
  payments(accountId: string): string {
    return `${this.account(accountId)}:payments`
  }

  /** The sharded pub/sub channel of an account's payment events (its history's changes), in its slot. */
  paymentEvents(accountId: string): string {
    return `${this.account(accountId)}:events`
  }

  /** The data of an account's payment history: entry id → JSON. */
  paymentEntries(accountId: string): string {
    return `${this.account(accountId)}:payments:data`
  }

  /** The hosted STREAM receiver's secret when the config gives none: made once by the first worker (SET NX). */
  get receiverSecret(): string {
    return `${this.prefix}receiver:secret`
  }

  /** A sign-up challenge that was used, by its SHA-256: set NX at sign-up, expiring with the challenge. */
  signupUsed(digestHex: string): string {
    return `${this.prefix}signup:used:${digestHex}`
  }

  /** Failed admin-token checks from one IP address in one fixed window (admin.failedAuth). */
  authFailures(ip: string, window: number): string {
    return `${this.prefix}authfail:${ip}:${window}`
  }

  /** Sign-up accounts made so far (signup.maxAccounts). */
  get signupAccounts(): string {
    return `${this.prefix}signup:accounts`
  }

  /** A fixed-window counter of sign-up requests: what (challenge, signup), whose (`farm` or `ip:<address>`), which window. */
  signupRate(kind: 'challenge' | 'signup', scope: string, window: number): string {
    return `${this.prefix}signup:rate:${kind}:${scope}:${window}`
  }

  /**
   * Farm-wide keys as they were named before they shared the {farm} tag, with
   * their names now: a worker starting on such a farm renames them once.
   */
  renamedFarmKeys(): Array<[from: string, to: string]> {
    const p = this.prefix
    return [
      [`${p}hotset`, this.legacyHotSet],
      [`${p}workers`, this.workers],
      [`${p}routes`, this.routes],
      [`${p}routes:stats`, this.routeStats],
      [`${p}ccp:table`, this.ccpTable],
      [`${p}ccp:adv`, this.ccpAdvertised],
      [`${p}ccp:control`, this.ccpControl],
      [`${p}ccp:recv`, this.ccpReceived],
      [`${p}settlements`, this.settlements],
      [`${p}settlements:webhook`, this.settlementsWebhook],
      [`${p}metrics`, this.metrics],
    ]
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
    return `${this.prefix}${FARM_TAG}:accounts:ids`
  }

  /** Set of the ids every worker keeps loaded: parents, peers, and accounts that carry routes or speak CCP. */
  get pinnedAccounts(): string {
    return `${this.prefix}${FARM_TAG}:accounts:pinned`
  }

  /** Stream of account changes (field `ids`): a worker whose subscriber reconnected catches up from it. */
  get accountChanges(): string {
    return `${this.prefix}${FARM_TAG}:accounts:changes`
  }

  /**
   * Pub/sub channel (sharded): `<stream id> <account id>...` of changed accounts, or `*` (drop every
   * cached account). In no account's slot: on a cluster it is published by the writer after its
   * script, on one Redis by the script itself.
   */
  get accountsChanged(): string {
    return `${this.prefix}accounts:changed`
  }

  /** Accounts of a farm from before per-account records: a hash, id → record; migrated at start. */
  get legacyAccounts(): string {
    return `${this.prefix}accounts`
  }

  /**
   * Heartbeat of the worker running shard `shard` on host `hostId`: JSON
   * (hostId, shard, bootId, pid, startedAt...) with a short TTL. Named after
   * its worker id, so each host's shards have keys of their own.
   */
  worker(hostId: string, shard: number): string {
    return this.workerById(Keys.workerId(hostId, shard))
  }

  /** The heartbeat key of a member of the workers set. */
  workerById(workerId: string): string {
    return `${this.prefix}${FARM_TAG}:worker:${workerId}`
  }

  /** A worker's id farm-wide, the member of the workers set: `<hostId>/<shard>` (a host id has no `/`). */
  static workerId(hostId: string, shard: number): string {
    return `${hostId}/${shard}`
  }

  /** The host id and shard of a worker id; undefined for anything else (a bare shard id written by an older farm). */
  static parseWorkerId(workerId: string): { hostId: string; shard: number } | undefined {
    const slash = workerId.lastIndexOf('/')
    const shard = Number(workerId.slice(slash + 1))
    if (slash <= 0 || !Number.isInteger(shard) || shard < 0 || workerId.slice(slash + 1) === '') return undefined
    return { hostId: workerId.slice(0, slash), shard }
  }

  account(id: string): string {
    return this.packetKeys(id).account
  }

  /**
   * An account's balance hash, its in-flight records and its credits, named
   * once: the packet path names a few accounts over and over.
   */
  packetKeys(id: string): AccountPacketKeys {
    let keys = this.accountKeys.get(id)
    if (keys === undefined) {
      const account = `${this.prefix}{acct:${id}}`
      keys = {
        account,
        inflight: `${account}:inflight`,
        credits: `${account}:credits`,
        rate: `${account}:rate`,
        owed: `${account}:owed`,
        received: `${account}:received`,
      }
      if (this.accountKeys.size < 10_000) this.accountKeys.set(id, keys)
    }
    return keys
  }

  private readonly accountKeys = new Map<string, AccountPacketKeys>()

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

  /**
   * Pub/sub channel of one worker process, by its boot id (`<shard>-<random>`, unique farm-wide, across
   * hosts too): replies to its async prepares, wherever they arrived.
   */
  replyChannel(ownerId: string): string {
    return `${this.prefix}replies:${ownerId}`
  }

  /**
   * The incoming records of the account's packets in flight (lua/lib/entry.lua):
   * a hash, packet id → record, in the account's hash slot.
   */
  inflight(accountId: string): string {
    return this.packetKeys(accountId).inflight
  }

  /**
   * The outgoing records of packets in flight towards the account, each
   * waiting for its credit or release: a hash, `<incoming account>|<packet
   * id>` → record, in the account's hash slot.
   */
  credits(accountId: string): string {
    return this.packetKeys(accountId).credits
  }

  /**
   * The accounts where one worker process (boot id) may hold packet records:
   * a set in a slot of its own, written before the process's first packet on
   * an account. The sweeper reads it when the process is gone.
   */
  ownerAccounts(bootId: string): string {
    return `${this.prefix}{own:${bootId}}:accounts`
  }

  /** hotSet field of a packet: unique per incoming account and packet id. */
  static hotSetField(incomingAccount: string, packetId: string): string {
    return `${incomingAccount}|${packetId}`
  }
}
