import { parseAccount, parseNewAccount } from '../config/load.js'
import type { AccountConfig } from '../config/schema.js'
import type { AddressMapper } from '../routing/address-mapper.js'
import { type AccountOrigin, type AccountRegistry, type ImportItem, type ImportOutcome, newToken, type WriteResult } from './registry.js'

export type AccountResult =
  | {
      ok: true
      account: AccountConfig
      /** The plain token, when the farm made it: shown once, never stored. */
      token?: string
      /** The id belonged to a deleted account (created with reuseDeletedId). */
      reusedDeletedId?: boolean
    }
  | { ok: false; status: 400 | 404 | 409; error: string; issues?: string[] }

/** One line of a bulk import, as the admin API answers it. */
export type ImportLineResult =
  | { outcome: 'created'; id: string; token?: string }
  | { outcome: Exclude<ImportOutcome, 'created'>; id: string; error?: string }
  | { outcome: 'invalid'; id?: string; error: string; issues: string[] }

export interface CreateOptions {
  /** Take an id that belonged to a deleted account (its balance, still recorded, goes to the new holder). */
  reuseDeletedId?: boolean
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
}

/** `body` with a fresh token in `incoming` when it names none; the token, if made. */
function withToken(body: Record<string, unknown>): { body: Record<string, unknown>; token?: string } {
  const incoming = body.incoming
  if (incoming === undefined || (isObject(incoming) && incoming.token === undefined && incoming.tokenHash === undefined)) {
    const token = newToken()
    return { body: { ...body, incoming: { ...(isObject(incoming) ? incoming : {}), token } }, token }
  }
  return { body }
}

/**
 * Creating, changing and deleting accounts at runtime, for the admin API,
 * bulk import, redeemed tickets and open sign-up alike: the config file's
 * validation, a generated token when none is given, and the account's own
 * `routes` added or removed with it. A child needs no route of its own: the
 * address mapper routes `<ilpAddress>.<id>` to it by its address.
 */
export class AccountService {
  constructor(
    readonly registry: AccountRegistry,
    private readonly routes: AddressMapper,
    private readonly ilpAddress: string,
  ) {}

  /** `body` is one account as in the config file's accounts[]; without a token in `incoming`, one is made. */
  async create(body: unknown, origin: AccountOrigin, opts: CreateOptions = {}): Promise<AccountResult> {
    if (!isObject(body)) return { ok: false, status: 400, error: 'body: must be a JSON object (one account, as in the config file)' }
    const { body: withTokenBody, token } = withToken(body)
    const parsed = parseNewAccount(withTokenBody)
    if ('problems' in parsed) return invalid(parsed.problems)
    const result = await this.registry.create(parsed.account, origin, opts)
    if (result.status !== 'written') return refused(result, parsed.account.id)
    for (const prefix of result.account.routes) await this.routes.addStatic(prefix, result.account.id)
    return {
      ok: true,
      account: result.account,
      ...(token === undefined ? {} : { token }),
      ...(result.previous?.deleted === true ? { reusedDeletedId: true } : {}),
    }
  }

  /**
   * Replaces account `id` with `body` (full replace; an `incoming` without a
   * token keeps the current one); routes it no longer has are removed.
   */
  async update(id: string, body: unknown): Promise<AccountResult> {
    if (!isObject(body)) return { ok: false, status: 400, error: 'body: must be a JSON object (one account, as in the config file)' }
    const record = await this.registry.record(id)
    const current = record?.deleted ? undefined : record?.account
    if (!current) return { ok: false, status: 404, error: `no account ${id}` }
    if (body.id !== undefined && body.id !== id) return { ok: false, status: 400, error: `id: must be "${id}" (an account cannot be renamed)` }
    const incoming = body.incoming
    if (isObject(incoming) && incoming.token === undefined && incoming.tokenHash === undefined && current.incoming?.tokenHash) {
      body = { ...body, incoming: { ...incoming, tokenHash: current.incoming.tokenHash } }
    }
    const parsed = parseAccount({ ...(body as Record<string, unknown>), id })
    if ('problems' in parsed) return invalid(parsed.problems)
    const result = await this.registry.update(parsed.account)
    if (result.status !== 'written' && result.status !== 'unchanged') return refused(result, id)
    const updated = result.account
    const after = new Set(updated.routes)
    for (const prefix of current.routes) if (!after.has(prefix)) await this.routes.removeStatic(prefix, id)
    // all of them, not only the new ones: an update also repairs a route a failed create left out
    for (const prefix of after) await this.routes.addStatic(prefix, id)
    return { ok: true, account: updated }
  }

  /** Deletes account `id` and its own routes; its balance stays in Redis (money is never dropped). */
  async remove(id: string): Promise<AccountConfig | undefined> {
    const removed = await this.registry.remove(id)
    if (removed) {
      // a child's own address was a static route before children were routed by address
      const own = removed.relation === 'child' ? [`${this.ilpAddress}.${removed.id}`] : []
      for (const prefix of [...own, ...removed.routes]) await this.routes.removeStatic(prefix, id)
    }
    return removed
  }

  /**
   * Many accounts at once, each validated exactly like `create`: one result
   * per body, in order. Identical accounts are skipped; a different account
   * under a live id is refused unless `update`.
   */
  async importMany(bodies: readonly unknown[], opts: { update: boolean }): Promise<ImportLineResult[]> {
    const results: ImportLineResult[] = new Array<ImportLineResult>(bodies.length)
    const items: ImportItem[] = []
    const positions: number[] = []
    const tokens: Array<string | undefined> = []
    bodies.forEach((body, i) => {
      if (!isObject(body)) {
        results[i] = { outcome: 'invalid', error: 'must be a JSON object (one account, as in the config file)', issues: ['(line): must be a JSON object'] }
        return
      }
      const { body: withTokenBody, token } = withToken(body)
      // import makes accounts: a reserved id is refused, with --update too
      const parsed = parseNewAccount(withTokenBody)
      if ('problems' in parsed) {
        results[i] = { outcome: 'invalid', ...(typeof body.id === 'string' ? { id: body.id } : {}), error: `invalid account: ${parsed.problems.join('; ')}`, issues: parsed.problems }
        return
      }
      items.push({ account: parsed.account, generatedToken: token !== undefined })
      positions.push(i)
      tokens.push(token)
    })
    const outcomes = await this.registry.importMany(items, { update: opts.update, origin: 'admin' })
    for (let k = 0; k < items.length; k++) {
      const outcome = outcomes[k]!
      const account = items[k]!.account
      const id = account.id
      if (outcome === 'created') {
        const token = tokens[k]
        results[positions[k]!] = token === undefined ? { outcome, id } : { outcome, id, token }
      } else {
        results[positions[k]!] = { outcome, id, ...(IMPORT_ERRORS[outcome] ? { error: IMPORT_ERRORS[outcome](id) } : {}) }
      }
      if ((outcome === 'created' || outcome === 'updated') && account.routes.length > 0) {
        for (const prefix of account.routes) await this.routes.addStatic(prefix, id)
      }
    }
    return results
  }
}

const IMPORT_ERRORS: Partial<Record<ImportOutcome, (id: string) => string>> = {
  exists: (id) => `account ${id} exists with different settings (--update replaces it)`,
  deleted: (id) => `the id ${id} belonged to a deleted account`,
  'token-taken': () => 'incoming.token: is another account\'s token',
  conflict: (id) => `account ${id} changed while it was written (or is twice in the batch): retry`,
}

function refused(result: Exclude<WriteResult, { status: 'written' }>, id: string): AccountResult {
  switch (result.status) {
    case 'exists':
      return { ok: false, status: 409, error: `account ${id} exists` }
    case 'deleted':
      return {
        ok: false,
        status: 409,
        error: `the id ${id} belonged to a deleted account: it is not given out again (the operator may reuse it explicitly, taking over its recorded balance)`,
      }
    case 'token-taken':
      return { ok: false, status: 409, error: 'incoming.token: is another account\'s token' }
    case 'missing':
    case 'unchanged':
      return { ok: false, status: 404, error: `no account ${id}` }
  }
}

/**
 * Gives account `id` a new 256-bit token and returns it (once: only its
 * SHA-256 is stored). The old token's index entry is released and the change
 * published like any update, so the old token stops working on every worker
 * within a round trip; `incoming.callbackUrls` and the rest stay as they are.
 * The JSON-RPC method (the account itself) and the admin API (the operator)
 * both use it. 404 for a missing account.
 */
export async function rotateToken(registry: AccountRegistry, id: string): Promise<{ ok: true; token: string } | { ok: false; status: 404; error: string }> {
  for (;;) {
    const record = await registry.record(id)
    const current = record?.deleted ? undefined : record?.account
    if (!current) return { ok: false, status: 404, error: `no account ${id}` }
    const token = newToken()
    const { tokenHash: _old, ...incoming } = current.incoming ?? {}
    const result = await registry.update({ ...current, incoming: { ...incoming, token } })
    if (result.status === 'written') return { ok: true, token }
    // 'token-taken' would mean a 256-bit collision: draw again
    if (result.status !== 'token-taken') return { ok: false, status: 404, error: `no account ${id}` }
  }
}

function invalid(problems: string[]): AccountResult {
  return { ok: false, status: 400, error: `invalid account: ${problems.join('; ')}`, issues: problems }
}
