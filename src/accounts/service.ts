import { parseAccount } from '../config/load.js'
import type { AccountConfig } from '../config/schema.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import { type AccountOrigin, type AccountRegistry, newToken } from './registry.js'

export type AccountResult =
  | { ok: true; account: AccountConfig; /** The plain token, when the farm made it: shown once, never stored. */ token?: string }
  | { ok: false; status: 400 | 404 | 409; error: string; issues?: string[] }

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/**
 * Creating, changing and deleting accounts at runtime, for the admin API,
 * redeemed tickets and open sign-up alike: the config file's validation, a
 * generated token when none is given, and the account's own routes (a
 * child's address, its `routes`) added or removed with it.
 */
export class AccountService {
  constructor(
    readonly registry: AccountRegistry,
    private readonly routes: AddressMapper,
    private readonly ilpAddress: string,
  ) {}

  /** `body` is one account as in the config file's accounts[]; without a token in `incoming`, one is made. */
  async create(body: unknown, origin: AccountOrigin): Promise<AccountResult> {
    if (!isObject(body)) return { ok: false, status: 400, error: 'body: must be a JSON object (one account, as in the config file)' }
    let token: string | undefined
    const incoming = body.incoming
    if (incoming === undefined || (isObject(incoming) && incoming.token === undefined && incoming.tokenHash === undefined)) {
      token = newToken()
      body = { ...body, incoming: { ...(isObject(incoming) ? incoming : {}), token } }
    }
    const parsed = parseAccount(body)
    if ('problems' in parsed) return invalid(parsed.problems)
    const created = await this.registry.create(parsed.account, origin)
    if (created === 'exists') return { ok: false, status: 409, error: `account ${parsed.account.id} exists` }
    for (const prefix of this.ownPrefixes(created)) await this.routes.addStatic(prefix, created.id)
    return token === undefined ? { ok: true, account: created } : { ok: true, account: created, token }
  }

  /**
   * Replaces account `id` with `body` (full replace; an `incoming` without a
   * token keeps the current one); routes it no longer has are removed.
   */
  async update(id: string, body: unknown): Promise<AccountResult> {
    if (!isObject(body)) return { ok: false, status: 400, error: 'body: must be a JSON object (one account, as in the config file)' }
    const current = this.registry.get(id)
    if (!current) return { ok: false, status: 404, error: `no account ${id}` }
    if (body.id !== undefined && body.id !== id) return { ok: false, status: 400, error: `id: must be "${id}" (an account cannot be renamed)` }
    const incoming = body.incoming
    if (isObject(incoming) && incoming.token === undefined && incoming.tokenHash === undefined && current.incoming?.tokenHash) {
      body = { ...body, incoming: { ...incoming, tokenHash: current.incoming.tokenHash } }
    }
    const parsed = parseAccount({ ...(body as Record<string, unknown>), id })
    if ('problems' in parsed) return invalid(parsed.problems)
    const updated = await this.registry.update(parsed.account)
    if (updated === 'missing') return { ok: false, status: 404, error: `no account ${id}` }
    const before = new Set(this.ownPrefixes(current))
    const after = new Set(this.ownPrefixes(updated))
    for (const prefix of before) if (!after.has(prefix)) await this.routes.removeStatic(prefix, id)
    // all of them, not only the new ones: an update also repairs a route a failed create left out
    for (const prefix of after) await this.routes.addStatic(prefix, id)
    return { ok: true, account: updated }
  }

  /** Deletes account `id` and its own routes; its balance stays in Redis (money is never dropped). */
  async remove(id: string): Promise<AccountConfig | undefined> {
    const removed = await this.registry.remove(id)
    if (removed) for (const prefix of this.ownPrefixes(removed)) await this.routes.removeStatic(prefix, id)
    return removed
  }

  /** The prefixes an account brings: a child's own address, and its `routes`. */
  private ownPrefixes(account: AccountConfig): string[] {
    return [...(account.relation === 'child' ? [`${this.ilpAddress}.${account.id}`] : []), ...account.routes]
  }
}

function invalid(problems: string[]): AccountResult {
  return { ok: false, status: 400, error: `invalid account: ${problems.join('; ')}`, issues: problems }
}
