import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { newToken } from '../accounts/registry.js'
import type { AccountService } from '../accounts/service.js'
import { allowedCallbackPrefixes } from '../async/callback-policy.js'
import { parseNewAccount } from '../config/load.js'
import { type AccountConfig, callbackUrlPrefix, type FarmConfig } from '../config/schema.js'
import type { Keys } from '../store/keys.js'
import { isValidAddressSegment } from '../util/address.js'
import { type NewAccount, verifyPow } from '@ilp-farm/protocol'
import type { RedisClient } from '../store/redis.js'

/** What a redeemed ticket or a sign-up gives the user (its JSON shape is shared with the client). */
export type { NewAccount }

/** A refused redemption or sign-up, with the reason the user is told. */
export class OnboardingError extends Error {
  constructor(
    readonly reason: 'invalid-ticket' | 'invalid-challenge' | 'wrong-solution' | 'id-taken' | 'invalid-account' | 'signup-disabled' | 'rate-limited' | 'signup-full',
    message: string,
    /** For rate-limited: when the current window ends. */
    readonly retryAfterMs?: number,
  ) {
    super(message)
    this.name = 'OnboardingError'
  }
}

/**
 * An issued ticket as stored: the account it creates (all but id and token), an optional fixed id, the URL
 * prefixes the account may register (replacing the farm-wide users.rpcUrlPrefixes), its expiry.
 */
interface TicketRecord {
  account: Record<string, unknown>
  id?: string
  callbackUrls?: string[]
  expiresAtMs: number
}

export const DEFAULT_TICKET_LIFETIME_MS = 24 * 3600 * 1000
export const MAX_TICKET_LIFETIME_MS = 30 * 24 * 3600 * 1000

/** A ticket's callbackUrls as given to issueTicket: absent, or prefixes valid as incoming.callbackUrls. */
function checkPrefixes(value: unknown): { callbackUrls?: string[] } | { problems: string[] } {
  if (value === undefined) return {}
  if (!Array.isArray(value)) return { problems: ['callbackUrls: must be an array of URL prefixes such as ["https://tunnel.example.com/"]'] }
  const problems = value.flatMap((prefix, i) => {
    const checked = callbackUrlPrefix.safeParse(prefix)
    return checked.success ? [] : [`callbackUrls[${i}]: ${checked.error.issues[0]?.message ?? 'invalid'}`]
  })
  return problems.length > 0 ? { problems } : { callbackUrls: value as string[] }
}

const digest = (secret: string) => createHash('sha256').update(secret, 'utf8').digest('hex')
const generatedId = () => `u${randomBytes(8).toString('hex')}`

/**
 * How a user gets an account without the operator typing it in:
 *
 * - **Invitation tickets** (MyCHIPs' peer tickets): the operator issues one
 *   (admin API) with the account's limits; the ticket is a 256-bit secret
 *   kept in Redis only as its SHA-256, with a TTL. Redeeming it (JSON-RPC,
 *   no token needed) consumes it with GETDEL, so it works once, on any
 *   worker, and never after it expired.
 * - **Open sign-up** (Mediachain), off unless `signup.enabled`: the farm
 *   hands out a challenge; a client that finds a proof of work for it gets a
 *   child account with the configured small limits. Checking the proof is
 *   one hash. A challenge is stateless, `v1.<expiry>.<random>.<HMAC>`, so
 *   asking for one stores nothing per challenge; only a sign-up marks its
 *   challenge used (SET NX of its digest, expiring with it), so a solution
 *   cannot be replayed. Challenges and sign-ups are counted per caller IP and
 *   farm-wide in fixed windows (`signup.limits`), and `signup.maxAccounts`
 *   caps the accounts sign-up makes.
 */
export class Onboarding {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: Keys,
    private readonly accounts: AccountService,
    private readonly config: Pick<FarmConfig, 'ilpAddress' | 'signup' | 'users'>,
  ) {}

  private ticketKey(ticket: string): string {
    return this.keys.ticket(digest(ticket))
  }

  private hmacKey: Promise<Buffer> | undefined

  /** The challenges' HMAC key: from config, else made once and shared through Redis (the first SET NX wins). */
  private challengeHmacKey(): Promise<Buffer> {
    const configured = this.config.signup.challengeKey
    if (configured !== undefined) return Promise.resolve(Buffer.from(configured, 'utf8'))
    this.hmacKey ??= (async () => {
      await this.redis.set(this.keys.signupHmacKey, randomBytes(32).toString('hex'), 'NX')
      const stored = await this.redis.get(this.keys.signupHmacKey)
      if (stored === null) throw new Error('sign-up challenge key vanished from Redis')
      return Buffer.from(stored, 'hex')
    })().catch((err: unknown) => {
      this.hmacKey = undefined
      throw err
    })
    return this.hmacKey
  }

  private async mac(body: string): Promise<string> {
    return createHmac('sha256', await this.challengeHmacKey()).update(body, 'utf8').digest().subarray(0, 16).toString('base64url')
  }

  /** The expiry of a challenge this farm made, or undefined for anything else (made up, altered, another farm's). */
  private async checkChallenge(challenge: string): Promise<number | undefined> {
    const parts = challenge.split('.')
    if (parts.length !== 4 || parts[0] !== 'v1' || !/^[0-9a-z]{1,12}$/.test(parts[1]!)) return undefined
    const expected = Buffer.from(await this.mac(parts.slice(0, 3).join('.')), 'utf8')
    const given = Buffer.from(parts[3]!, 'utf8')
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined
    return parseInt(parts[1]!, 36)
  }

  /**
   * Counts one request of `kind` from `ip` and farm-wide in the current window
   * (INCR and PEXPIRE, one round trip) and refuses it over either limit.
   */
  private async countRequest(kind: 'challenge' | 'signup', ip: string | undefined): Promise<void> {
    const { limits } = this.config.signup
    const perIp = kind === 'challenge' ? limits.challengesPerIp : limits.signupsPerIp
    const farmWide = kind === 'challenge' ? limits.challenges : limits.signups
    const now = Date.now()
    const window = Math.floor(now / limits.windowMs)
    const counted: Array<{ key: string; limit: number; what: string }> = []
    if (farmWide > 0) counted.push({ key: this.keys.signupRate(kind, 'farm', window), limit: farmWide, what: 'on this farm' })
    if (perIp > 0 && ip !== undefined) counted.push({ key: this.keys.signupRate(kind, `ip:${ip}`, window), limit: perIp, what: `from ${ip}` })
    if (counted.length === 0) return
    // a pipeline per counter: the counters are in different hash slots, and a cluster takes a pipeline within one
    const results = await Promise.all(counted.map(({ key }) => this.redis.pipeline().incr(key).pexpire(key, limits.windowMs * 2).exec()))
    counted.forEach(({ limit, what }, i) => {
      const [err, count] = results[i]?.[0] ?? [new Error('no answer')]
      if (err) throw err
      if (Number(count) > limit) {
        const retryAfterMs = (window + 1) * limits.windowMs - now
        const noun = kind === 'challenge' ? 'sign-up challenges' : 'sign-ups'
        throw new OnboardingError('rate-limited', `too many ${noun} ${what}: at most ${limit} per ${limits.windowMs} ms; retry in ${retryAfterMs} ms`, retryAfterMs)
      }
    })
  }

  /**
   * Issues a ticket for an account with these fields (as in the config file,
   * without id and token; relation defaults to child), optionally for a fixed
   * id and with the URL prefixes it may register (`callbackUrls`, unchecked
   * input here). Returns the problems instead when the account would be invalid.
   */
  async issueTicket(req: {
    account: Record<string, unknown>
    id?: string
    callbackUrls?: unknown
    lifetimeMs: number
  }): Promise<{ ticket: string; expiresAt: string } | { problems: string[] }> {
    const template = { relation: 'child', ...req.account }
    const prefixes = checkPrefixes(req.callbackUrls)
    if ('problems' in prefixes) return prefixes
    const check = parseNewAccount({ ...template, id: req.id ?? 'ticket-check', incoming: { token: 'x' } })
    if ('problems' in check) return { problems: check.problems }
    if ('id' in req.account || 'incoming' in req.account) {
      return { problems: ['account: must not name id or incoming (the id is given apart; the token is made at redemption; allowed URL prefixes are callbackUrls)'] }
    }
    const ticket = newToken()
    const expiresAtMs = Date.now() + req.lifetimeMs
    const record: TicketRecord = {
      account: template,
      ...(req.id ? { id: req.id } : {}),
      ...(prefixes.callbackUrls ? { callbackUrls: prefixes.callbackUrls } : {}),
      expiresAtMs,
    }
    await this.redis.set(this.ticketKey(ticket), JSON.stringify(record), 'PX', req.lifetimeMs)
    return { ticket, expiresAt: new Date(expiresAtMs).toISOString() }
  }

  /** Redeems a ticket: creates its account (id: the ticket's, else `wantedId`, else a generated one) and returns the token. */
  async redeemTicket(ticket: string, wantedId: string | undefined): Promise<NewAccount> {
    const key = this.ticketKey(ticket)
    const json = await this.redis.get(key)
    if (json === null) throw new OnboardingError('invalid-ticket', 'unknown, used or expired ticket')
    const record = JSON.parse(json) as TicketRecord
    if (record.id !== undefined && wantedId !== undefined && wantedId !== record.id) {
      throw new OnboardingError('invalid-account', `this ticket is for the account id "${record.id}"`)
    }
    const id = record.id ?? wantedId ?? generatedId()
    const body = this.withUserPrefixes({ ...record.account, id }, record.callbackUrls)
    await this.checkIdFree(id)
    // consuming the ticket is the one step that decides who got it: two redemptions at once, one wins
    if ((await this.redis.getdel(key)) === null) throw new OnboardingError('invalid-ticket', 'unknown, used or expired ticket')
    try {
      return await this.create(body, 'ticket')
    } catch (err) {
      // not used after all (the id was taken in between): the ticket is good again until its expiry
      const left = record.expiresAtMs - Date.now()
      if (left > 0) await this.redis.set(key, json, 'PX', left, 'NX')
      throw err
    }
  }

  /** A sign-up challenge: solve it (pow.ts) and call signUp before it expires. `ip`: the caller's, for its limit. */
  async challenge(ip?: string): Promise<{ challenge: string; difficulty: number; expiresAt: string }> {
    const signup = this.enabledSignup()
    await this.countRequest('challenge', ip)
    const expiresAtMs = Date.now() + signup.challengeTtlMs
    const body = `v1.${expiresAtMs.toString(36)}.${randomBytes(12).toString('base64url')}`
    const challenge = `${body}.${await this.mac(body)}`
    return { challenge, difficulty: signup.difficulty, expiresAt: new Date(expiresAtMs).toISOString() }
  }

  /** Creates a child account with the sign-up limits for a correct, unused, unexpired proof of work. */
  async signUp(challenge: string, nonce: string, wantedId: string | undefined, ip?: string): Promise<NewAccount> {
    const signup = this.enabledSignup()
    const expiresAtMs = await this.checkChallenge(challenge)
    if (expiresAtMs === undefined || expiresAtMs <= Date.now()) throw new OnboardingError('invalid-challenge', 'unknown, used or expired challenge')
    if (!verifyPow(challenge, nonce, signup.difficulty)) throw new OnboardingError('wrong-solution', `the nonce does not solve the challenge at difficulty ${signup.difficulty}`)
    await this.countRequest('signup', ip)
    const id = wantedId ?? generatedId()
    const body = this.withUserPrefixes({ relation: 'child', ...signup.account, id }, undefined)
    await this.checkIdFree(id)
    // The one write that decides who used the challenge: two sign-ups with one solution, one wins.
    const usedKey = this.keys.signupUsed(digest(challenge))
    if ((await this.redis.set(usedKey, '1', 'PX', Math.max(expiresAtMs - Date.now(), 1) + 1_000, 'NX')) === null) {
      throw new OnboardingError('invalid-challenge', 'unknown, used or expired challenge')
    }
    const cap = signup.maxAccounts
    if (cap !== undefined) {
      // Counted before the account is made and given back if it is not, so workers at once never pass the cap.
      if ((await this.redis.incr(this.keys.signupAccounts)) > cap) {
        await this.redis.decr(this.keys.signupAccounts)
        await this.redis.del(usedKey)
        throw new OnboardingError('signup-full', `this farm takes no more sign-ups (at most ${cap} accounts)`)
      }
    }
    try {
      return await this.create(body, 'signup')
    } catch (err) {
      // Not used after all (the id was taken in between): the challenge and the place under the cap are good again.
      await this.redis.del(usedKey).catch(() => undefined)
      if (cap !== undefined) await this.redis.decr(this.keys.signupAccounts).catch(() => undefined)
      throw err
    }
  }

  private enabledSignup(): FarmConfig['signup'] & { account: Record<string, unknown> } {
    const signup = this.config.signup
    if (!signup.enabled || signup.account === undefined) throw new OnboardingError('signup-disabled', 'open sign-up is not enabled on this farm')
    return signup as FarmConfig['signup'] & { account: Record<string, unknown> }
  }

  /**
   * The new account as it will be created, once it is known to be valid with a free id (checked again,
   * atomically, when it is created). A user cannot name an address for the farm to call, so the URL prefixes
   * it may register come from the operator: the ticket's own callbackUrls, else the farm-wide
   * users.rpcUrlPrefixes on top of what the account would be allowed anyway (the origin of an outgoing.url
   * its ticket gave it). With neither, incoming.callbackUrls stays unset and the usual default applies.
   */
  private withUserPrefixes(body: Record<string, unknown> & { id: string }, ticketPrefixes: string[] | undefined): Record<string, unknown> {
    const { id } = body
    if (!isValidAddressSegment(id)) throw new OnboardingError('invalid-account', 'id must be 1-64 characters of a-z A-Z 0-9 _ ~ -')
    const check = parseNewAccount({ ...body, incoming: { token: 'x' } })
    if ('problems' in check) throw new OnboardingError('invalid-account', check.problems.join('; '))
    const farmWide = this.config.users.rpcUrlPrefixes
    const callbackUrls =
      ticketPrefixes ?? (farmWide.length === 0 ? undefined : [...new Set([...farmWide, ...allowedCallbackPrefixes(check.account)])])
    return callbackUrls === undefined ? body : { ...body, incoming: { callbackUrls } }
  }

  /**
   * Refuses an id that is live or belonged to a deleted account (whose balance
   * must not pass to a stranger) before a ticket or challenge is spent; the
   * create checks again, atomically.
   */
  private async checkIdFree(id: string): Promise<void> {
    const record = await this.accounts.registry.record(id)
    if (record !== undefined) throw new OnboardingError('id-taken', `the account id "${id}" is taken`)
  }

  private async create(body: Record<string, unknown>, origin: 'ticket' | 'signup'): Promise<NewAccount> {
    const result = await this.accounts.create(body, origin)
    if (!result.ok) {
      if (result.status === 409) throw new OnboardingError('id-taken', `the account id "${String(body.id)}" is taken`)
      throw new OnboardingError('invalid-account', result.error)
    }
    const account: AccountConfig = result.account
    return { id: account.id, token: result.token!, ilpAddress: `${this.config.ilpAddress}.${account.id}`, assetCode: account.assetCode, assetScale: account.assetScale }
  }
}
