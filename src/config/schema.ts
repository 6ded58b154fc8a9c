import { availableParallelism } from 'node:os'
import { z } from 'zod'
import { isDecimalString, isIntString, isUInt64String } from '../util/amount.js'
import { isValidAddressSegment, isValidIlpAddress, isValidRoutePrefix } from '../util/address.js'
import { HOST_ID_PATTERN } from './host-id.js'
import { operatorDigest, SCOPES } from './operator-scopes.js'

const uint64Amount = z
  .string({ error: 'must be a decimal string in quotes (a non-negative integer)' })
  .refine(isUInt64String, 'must be a non-negative integer decimal string no larger than 18446744073709551615')
const intAmount = z
  .string({ error: 'must be a decimal string in quotes (an integer)' })
  .refine(isIntString, 'must be an integer decimal string such as "-1000" or "0"')
const ilpAddress = z.string().refine(isValidIlpAddress, 'must be an ILP address such as "test.farm" (RFC 15)')
const routePrefix = z
  .string()
  .refine(isValidRoutePrefix, 'must be an ILP address prefix such as "g.bank" or "test" (RFC 15)')
const positivePrice = z
  .string({ error: 'must be a decimal string in quotes such as "1.08"' })
  .refine(isDecimalString, 'must be a decimal string such as "1.08" (no sign or exponent)')
  .refine((s) => !isDecimalString(s) || /[1-9]/.test(s), 'must be greater than zero')
const spread = z
  .string({ error: 'must be a decimal string in quotes such as "0.002"' })
  .refine(isDecimalString, 'must be a decimal string such as "0.002" (0.2%)')
  .refine((s) => !isDecimalString(s) || s.startsWith('0'), 'must be below 1')
const secret = z.string().min(1, 'must not be empty')
/** Binds only the local machine can reach: the admin token's strength is not checked there. */
const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost'])
export const MIN_PUBLIC_ADMIN_TOKEN_LENGTH = 16
/** Tokens anyone can read in this package (config/example.yaml, docs) are as good as none. */
const KNOWN_ADMIN_TOKENS = new Set(['change-me-admin-token'])

function weakAdminToken(token: string): boolean {
  return token.length < MIN_PUBLIC_ADMIN_TOKEN_LENGTH || KNOWN_ADMIN_TOKENS.has(token)
}

const WEAK_TOKEN_MESSAGE = `on a non-loopback http.host an operator token must be at least ${MIN_PUBLIC_ADMIN_TOKEN_LENGTH} characters and not the example's; make one with: openssl rand -hex 32`

/**
 * A scoped operator token: a name (for messages), the token or its SHA-256, and what it may do
 * (src/http/scopes.ts). A tokenHash cannot be checked for strength: whoever made it vouches for it.
 */
const operatorTokenSchema = z
  .strictObject({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'must be 1-64 characters of a-z A-Z 0-9 _ . -'),
    token: secret.optional(),
    tokenHash: z
      .string()
      .regex(/^[0-9a-f]{64}$/, 'must be the SHA-256 of the token as 64 lower-case hex digits')
      .optional(),
    scopes: z.array(z.enum(SCOPES)).min(1, `must name at least one of ${SCOPES.join(', ')}`),
  })
  .refine((t) => (t.token === undefined) !== (t.tokenHash === undefined), 'give exactly one of token and tokenHash')

/** The SHA-256 hex of each operator token of the admin block, admin.token first; for the duplicate check. */
function operatorDigests(admin: { token?: string; tokens: { token?: string; tokenHash?: string }[] }): (string | undefined)[] {
  // the digest the farm keeps (operatorDigest); an entry with neither form has none
  const hex = (t: { token?: string; tokenHash?: string }) => (t.token === undefined && t.tokenHash === undefined ? undefined : operatorDigest(t).toString('hex'))
  return [hex({ token: admin.token }), ...admin.tokens.map(hex)]
}

/** What a seed node of `redis.cluster` must be. */
export const REDIS_SEED_PROBLEM = 'must be a redis:// or rediss:// URL with a host and a port (redis://10.0.0.5:7000)'

/** A cluster seed node: redis:// or rediss://, a host and a port (a password may come with it). */
export function isRedisSeedUrl(seed: string): boolean {
  try {
    const url = new URL(seed)
    return (url.protocol === 'redis:' || url.protocol === 'rediss:') && url.hostname !== '' && url.port !== ''
  } catch {
    return false
  }
}

const positiveMs = z.number().int('must be a whole number of milliseconds').positive('must be positive')
/**
 * A prefix of URLs the farm may call for an account (its RPC URL, its async Callback-Urls). The host must
 * end with "/" or ":", so "https://wallet.example" cannot also match "https://wallet.example.attacker.net".
 * `https://*.tunnel.example/` stands for any one host label (src/async/callback-policy.ts).
 */
export const callbackUrlPrefix = z
  .string()
  .regex(
    /^https?:\/\/[^/?#@\s]+(:|\/)/,
    'must be an http(s) URL prefix that ends its host with "/" or ":" (such as "https://wallet.example/" or "http://127.0.0.1:")',
  )

export const accountSchema = z.strictObject({
  id: z.string().refine(isValidAddressSegment, 'must be 1-64 characters of a-z A-Z 0-9 _ ~ -'),
  relation: z.enum(['parent', 'peer', 'child']),
  assetCode: z.string().min(1).max(16),
  assetScale: z.number().int().min(0).max(255),
  /** Lowest balance the account may reach; negative is credit the farm extends. */
  minBalance: intAmount.default('0'),
  /** Highest balance (what the farm may owe the account); unset means no limit. */
  maxBalance: intAmount.optional(),
  maxPacketAmount: uint64Amount.optional(),
  /** How many packets' worth a shard leases from cold at a time; default from the id's first byte (see parallelism.ts). */
  parallelism: z.number().int().min(1).max(64).optional(),
  /** Packets the account may send per second, farm-wide (T05 beyond); default `limits.maxPacketsPerSecond`. */
  maxPacketsPerSecond: z.number().int().positive().optional(),
  /** Amount the account may send per second, farm-wide, in its units (T04 beyond); default `limits.maxAmountPerSecond`. */
  maxAmountPerSecond: uint64Amount.optional(),
  /** Packets of the account in flight at once, farm-wide (T05 beyond); default `limits.maxInFlight`. */
  maxInFlight: z.number().int().positive().optional(),
  incoming: z
    .strictObject({
      /** The account's bearer token; the farm keeps and stores only its SHA-256 (tokenHash). */
      token: secret.optional(),
      /** The token's SHA-256 as 64 hex digits, instead of the token itself (so a config file need not hold it). */
      tokenHash: z
        .string()
        .regex(/^[0-9a-f]{64}$/, 'must be the SHA-256 of the token as 64 lower-case hex digits')
        .optional(),
      /**
       * URL prefixes the farm may call for this account: its own RPC URL (ilp_setRpcUrl) and the Callback-Urls
       * of its async packets. Default: the origin of its outgoing.url; with neither, it can register no RPC URL
       * and cannot use async mode (the farm never calls an address an account picked freely).
       */
      callbackUrls: z.array(callbackUrlPrefix).optional(),
    })
    .refine((i) => (i.token === undefined) !== (i.tokenHash === undefined), 'give exactly one of token and tokenHash')
    .optional(),
  outgoing: z
    .strictObject({
      url: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }),
      /** The bearer token the farm sends; stored in Redis with the account. */
      token: secret.optional(),
      /** Or: the environment variable of each worker that holds it (never stored). */
      tokenEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name').optional(),
      /** Or: a file on each host whose first line is it (never stored; read again after a minute). */
      tokenFile: z.string().min(1).optional(),
      mode: z.enum(['sync', 'async']).default('sync'),
    })
    .refine((o) => [o.token, o.tokenEnv, o.tokenFile].filter((t) => t !== undefined).length <= 1, {
      message: 'give at most one of token, tokenEnv and tokenFile',
    })
    .optional(),
  routes: z.array(routePrefix).default([]),
  /**
   * Settlement trigger: when the balance (what the farm owes the account) reaches settleThreshold, the farm
   * records one settlement request for the amount that brings it back to settleTo (default 0).
   */
  settleThreshold: intAmount.optional(),
  settleTo: intAmount.optional(),
  sendRoutes: z.boolean().default(false),
  receiveRoutes: z.boolean().default(false),
  /**
   * Per-account series in /metrics and a place on the dashboard for this account (parents and peers always
   * have them): opted in by the operator, so their number stays what the operator chose.
   */
  metrics: z.boolean().optional(),
})

export const configSchema = z.strictObject({
  ilpAddress,
  http: z
    .strictObject({
      host: z.string().min(1).default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(7768),
      tls: z.strictObject({ cert: z.string().min(1), key: z.string().min(1) }).optional(),
      /**
       * The farm's base URL as peers reach it (behind a proxy or load balancer);
       * async callbacks go to <publicUrl>/accounts/<id>/ilp/callbacks.
       * Unset: http(s)://<host>:<port> of the listening socket.
       */
      publicUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
      /** Longest time to receive a whole request (headers and body): a body trickled in slowly is cut off (408). */
      requestTimeoutMs: positiveMs.default(30_000),
      /** Longest time to receive a request's headers; at most requestTimeoutMs. */
      headersTimeoutMs: positiveMs.default(10_000),
      /**
       * A socket with no traffic either way for this long is closed. Longer than maxHoldTimeMs, since a request
       * waits that long for its next hop with nothing on the wire.
       */
      connectionTimeoutMs: positiveMs.default(120_000),
      /** How long an idle keep-alive connection stays open between requests. */
      keepAliveTimeoutMs: positiveMs.default(65_000),
      /** Open connections per worker; one more is closed as soon as it is accepted. */
      maxConnections: z.number().int().min(1).max(1_000_000).default(10_000),
    })
    .refine((h) => h.headersTimeoutMs <= h.requestTimeoutMs, {
      message: 'headersTimeoutMs must be at most requestTimeoutMs',
      path: ['headersTimeoutMs'],
    })
    .prefault({}),
  /** JSON-RPC at POST /rpc: what one HTTP request may ask for. */
  rpc: z
    .strictObject({
      /** Requests in one batch; a longer batch is refused whole (-32600) before any of it runs. */
      maxBatch: z.number().int().min(1).max(10_000).default(100),
      /** Requests of one batch running at once. */
      batchConcurrency: z.number().int().min(1).max(1_000).default(8),
      /** Once a batch's answers reach this size, the requests not yet run are answered -32000 and not run. */
      maxResponseBytes: z.number().int().min(1_000).max(100_000_000).default(4_000_000),
    })
    .prefault({}),
  /** Worker processes; default: one per core (os.availableParallelism()). */
  workers: z.number().int().min(1).max(256).default(() => Math.min(availableParallelism(), 256)),
  /** Crash safety: heartbeats, leader lease, sweeper. */
  farm: z
    .strictObject({
      /** How often each worker rewrites its heartbeat (and bids for or renews the leader lease). */
      heartbeatIntervalMs: positiveMs.default(1000),
      /** A worker whose heartbeat is this old counts as dead. */
      heartbeatTtlMs: positiveMs.default(3000),
      /** The leader lease's TTL: a dead leader is replaced within about this long. */
      leaderLeaseMs: positiveMs.default(5000),
      /** How often the leader sweeps the expired packets of dead workers. */
      sweepIntervalMs: positiveMs.default(1000),
      /**
       * This supervisor's name in the farm when several share one Redis (docs/SCALING.md): every worker
       * key carries it, and a supervisor refuses to start while workers of its host id are live.
       * Unset: the machine's hostname and the HTTP port (`myhost:7768`).
       */
      hostId: z.string().regex(HOST_ID_PATTERN, 'must be 1 to 100 letters, digits or . _ : -').optional(),
    })
    .refine((f) => f.heartbeatTtlMs > f.heartbeatIntervalMs, {
      message: 'heartbeatTtlMs must be longer than heartbeatIntervalMs',
      path: ['heartbeatTtlMs'],
    })
    .refine((f) => f.leaderLeaseMs > f.heartbeatIntervalMs, {
      message: 'leaderLeaseMs must be longer than heartbeatIntervalMs',
      path: ['leaderLeaseMs'],
    })
    .prefault({}),
  redis: z
    .strictObject({
      url: z.string().min(1).optional(),
      /**
       * Seed node URLs of a Redis Cluster (e.g. ["redis://10.0.0.5:7000"]); with them the farm uses a
       * cluster client and starts no embedded Redis. Not together with url.
       */
      cluster: z.array(z.string().refine(isRedisSeedUrl, REDIS_SEED_PROBLEM)).min(1).optional(),
      /**
       * What a packet transition waits for before it counts: 'none' (the master applied it) or 'replica'
       * (also at least one replica has it, WAIT, within durabilityTimeoutMs).
       */
      durability: z.enum(['none', 'replica']).default('none'),
      durabilityTimeoutMs: positiveMs.default(500),
      dataDir: z.string().min(1).default('data/redis'),
      keyPrefix: z.string().default('ilpfarm:'),
      appendfsync: z.enum(['always', 'everysec', 'no']).default('everysec'),
      commandTimeoutMs: positiveMs.default(2000),
    })
    .refine((r) => r.url === undefined || r.cluster === undefined, {
      message: 'url and cluster are exclusive: a single Redis (url, REDIS_URL) or the seed nodes of a Redis Cluster (cluster, REDIS_CLUSTER), not both',
      path: ['cluster'],
    })
    .prefault({}),
  admin: z
    .strictObject({
      /** The operator token with every scope (as `scopes: [admin]`). */
      token: secret.optional(),
      /** Narrower operator tokens, each with its scopes; kept only as SHA-256 digests. */
      tokens: z.array(operatorTokenSchema).default([]),
      /**
       * Failed admin-token checks (dashboard login, /admin, /metrics) one IP address may make per window, all
       * workers together; beyond, 429 until the window ends. perIp 0: no limit.
       */
      failedAuth: z
        .strictObject({ perIp: z.number().int().min(0).default(30), windowMs: positiveMs.default(60_000) })
        .prefault({}),
    })
    .superRefine((admin, ctx) => {
      const names = new Set<string>()
      admin.tokens.forEach((t, i) => {
        if (names.has(t.name)) ctx.addIssue({ code: 'custom', message: `another token is named "${t.name}"`, path: ['tokens', i, 'name'] })
        names.add(t.name)
      })
      // one token in two entries would have two sets of scopes: which one applies would be a guess
      const seen = new Map<string, string>()
      operatorDigests(admin).forEach((digest, i) => {
        if (digest === undefined) return
        const name = i === 0 ? 'admin.token' : `admin.tokens ${admin.tokens[i - 1]!.name}`
        const other = seen.get(digest)
        if (other !== undefined) {
          ctx.addIssue({ code: 'custom', message: `the same token as ${other}: each token may appear once`, path: i === 0 ? ['token'] : ['tokens', i - 1, 'token'] })
        } else seen.set(digest, name)
      })
    })
    .prefault({}),
  /**
   * Defaults of the accounts' sending limits (an account's own field wins), enforced farm-wide in the
   * reservation script: unset, no limit.
   */
  limits: z
    .strictObject({
      maxPacketsPerSecond: z.number().int().positive().optional(),
      maxAmountPerSecond: uint64Amount.optional(),
      maxInFlight: z.number().int().positive().optional(),
    })
    .prefault({}),
  /** Time kept back from the incoming expiry for the reply to travel upstream. */
  minMessageWindowMs: positiveMs.default(1000),
  /** Longest time the farm holds a packet for the next hop. */
  maxHoldTimeMs: positiveMs.default(30000),
  routing: z
    .strictObject({
      broadcastIntervalMs: positiveMs.default(60000),
      /** How the farm picks among several next hops for one prefix (docs/ARCHITECTURE.md, "Routing"). */
      policy: z.enum(['success-rate', 'highest-balance', 'lowest-balance']).default('success-rate'),
    })
    .prefault({}),
  /**
   * Exchange rates (docs/ARCHITECTURE.md, "Exchange rates"): asset code → price in a common unit, and the
   * spread the farm keeps on a conversion between different codes. Same code: one to one, no spread.
   */
  rates: z
    .strictObject({
      prices: z.record(z.string().min(1).max(16), positivePrice).default({}),
      spread: spread.default('0'),
    })
    .prefault({}),
  /**
   * Bounds on what one account's Request-Ids and async callbacks may hold: each Request-Id is a Redis key and
   * each pending callback a retry loop in a worker, so without them a caller could make the farm keep state at will.
   */
  async: z
    .strictObject({
      /** Request-Ids one account may claim per window of maxHoldTimeMs plus a margin (about the keys' lifetime). */
      maxRequestIdsPerAccount: z.number().int().min(1).default(10_000),
      /** Longest Callback-Url stored with a Request-Id. */
      maxCallbackUrlLength: z.number().int().min(64).max(65_536).default(2_048),
      /** Callbacks one account may have pending (being delivered or retried) on one worker; beyond: 429. */
      maxPendingCallbacksPerAccount: z.number().int().min(1).default(100),
      /** A callback is retried until min(prepare expiry, now + maxHoldTimeMs + this). */
      callbackMarginMs: positiveMs.default(5_000),
    })
    .prefault({}),
  /** Settlement requests (accounts' settleThreshold): also POSTed to this webhook, in order, at least once. */
  settlement: z
    .strictObject({
      webhookUrl: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
      webhookToken: secret.optional(),
    })
    .prefault({}),
  /**
   * Open sign-up gated by proof of work, off by default: a client that solves a challenge of
   * `difficulty` leading zero bits gets a child account with `account`'s limits.
   */
  signup: z
    .strictObject({
      enabled: z.boolean().default(false),
      /** Leading zero bits of SHA-256(challenge || nonce): about 2^difficulty hashes to solve, one to check. */
      difficulty: z.number().int().min(1).max(40).default(20),
      challengeTtlMs: positiveMs.default(120_000),
      /**
       * HMAC key of the stateless challenges (at least 32 characters). Unset: a random one made once and shared
       * through Redis, so every worker accepts every worker's challenges.
       */
      challengeKey: z.string().min(32, 'must be at least 32 characters').optional(),
      /** Most sign-up accounts ever made; beyond, ilp_signUp is refused (reason signup-full). Unset: no cap. */
      maxAccounts: z.number().int().min(0).optional(),
      /**
       * Requests per window, farm-wide through Redis counters (one per window and caller, expiring with it);
       * 0 turns a limit off. Beyond, the call is refused (reason rate-limited, data.retryAfterMs).
       */
      limits: z
        .strictObject({
          windowMs: positiveMs.default(60_000),
          challengesPerIp: z.number().int().min(0).default(60),
          challenges: z.number().int().min(0).default(6_000),
          signupsPerIp: z.number().int().min(0).default(10),
          signups: z.number().int().min(0).default(100),
        })
        .prefault({}),
      /** The new accounts' asset and limits (relation child). */
      account: z
        .strictObject({
          assetCode: z.string().min(1).max(16),
          assetScale: z.number().int().min(0).max(255),
          minBalance: intAmount.default('0'),
          maxBalance: intAmount.optional(),
          maxPacketAmount: uint64Amount.optional(),
        })
        .optional(),
    })
    .refine((s) => !s.enabled || s.account !== undefined, { message: 'an enabled sign-up needs account (assetCode, assetScale, limits)', path: ['account'] })
    .prefault({}),
  /** What every account a user makes itself (open sign-up, a redeemed ticket) is given. */
  users: z
    .strictObject({
      /**
       * Copied into the new account's incoming.callbackUrls: the URLs it may register with ilp_setRpcUrl (e.g.
       * the tunnel server the farm tells its users to use). Empty: such an account can register none, since the
       * farm never calls an address a user picked freely. A ticket's own callbackUrls replace these.
       */
      rpcUrlPrefixes: z.array(callbackUrlPrefix).default([]),
    })
    .prefault({}),
  /**
   * The farm-hosted STREAM receiver: every child account's payment pointer, answered by the farm (money arrives
   * while its user is offline). `secret` (64 hex digits) derives every connection's keys; without one, the first
   * worker makes one and shares it through Redis. Changing it ends the connections made with the old one.
   */
  receiver: z
    .strictObject({
      enabled: z.boolean().default(true),
      secret: z.string().regex(/^[0-9a-fA-F]{64}$/, 'must be 64 hex digits (32 bytes)').optional(),
    })
    .prefault({}),
  /**
   * Paying from an account over JSON-RPC (ilp_pay): the farm runs the STREAM sender. The SPSP server of a
   * payment pointer is a URL a user names, so the farm fetches none on a loopback, private or link-local address,
   * nor over plain http, unless told to here (a test farm, an internal network).
   */
  payments: z
    .strictObject({
      enabled: z.boolean().default(true),
      allowPrivateSpsp: z.boolean().default(false),
      allowHttpSpsp: z.boolean().default(false),
      /** Below the rates' prices, what a payment's sender accepts as exchange rate (0 to 1). */
      slippage: z.number().min(0).max(1).default(0.01),
    })
    .prefault({}),
  /** How many accounts each worker keeps at hand (besides parents, peers and route carriers, always kept). */
  accountCache: z
    .strictObject({ size: z.number().int('must be a whole number').min(100, 'must be at least 100').max(10_000_000).default(50_000) })
    .prefault({}),
  log: z
    .strictObject({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
    .prefault({}),
  /** Static routes naming their next hop; account-level `routes` are the shorthand. */
  routes: z.array(z.strictObject({ prefix: routePrefix, account: z.string() })).default([]),
  accounts: z.array(accountSchema).min(1, 'must list at least one account'),
}).refine((c) => c.http.connectionTimeoutMs > c.maxHoldTimeMs, {
  message: 'must be longer than maxHoldTimeMs (a request waits that long for its next hop with nothing on the wire)',
  path: ['http', 'connectionTimeoutMs'],
}).superRefine((c, ctx) => {
  if (LOOPBACK_HOSTS.has(c.http.host.toLowerCase())) return
  if (c.admin.token !== undefined && weakAdminToken(c.admin.token)) ctx.addIssue({ code: 'custom', message: WEAK_TOKEN_MESSAGE, path: ['admin', 'token'] })
  // a tokenHash cannot be checked: only its maker knows the token
  c.admin.tokens.forEach((t, i) => {
    if (t.token !== undefined && weakAdminToken(t.token)) ctx.addIssue({ code: 'custom', message: WEAK_TOKEN_MESSAGE, path: ['admin', 'tokens', i, 'token'] })
  })
})

export type FarmConfig = z.output<typeof configSchema>
export type AccountConfig = z.output<typeof accountSchema>
export type FarmConfigInput = z.input<typeof configSchema>
export type AccountConfigInput = z.input<typeof accountSchema>
