import type { AdminClient } from '../admin-client.js'
import { FarmError } from '../admin-client.js'
import { type FarmCommand, positionals, print, printJson } from '../command.js'
import { duration, plural, table, until } from '../format.js'
import { isUnfunded, limitSentence, limitState } from '../limits.js'
import { readAccountsPage } from '../account-pages.js'
import type { AccountsPage, HealthView, InflightEntry, RoutesView, WorkersView } from '../views.js'
import { accountsTable } from './accounts.js'
import { entryFlags, getInflight, inflightTable, liveOwners } from './inflight.js'
import { candidateState, routesTable } from './routes.js'
import { heartbeatLate, leaderLine, workersTable } from './workers.js'

/** Accounts read: the first page only, as a farm's accounts are unbounded and a diagnosis dump should not be. */
const INSPECT_PAGE = 1_000

const USAGE = `Usage: ilp-farm inspect

A human-readable dump of the farm's whole state, for diagnosis: its address and
health, the workers (heartbeat ages, the leader), the accounts (balances, limits,
how close each is to them: the first ${INSPECT_PAGE} in id order, and whether more
exist, which \`accounts list\` shows), the routes (candidates, their fulfilled/failed
counts and health), the packets in flight (owners, time to expiry) and, where the farm has
them, settlements. Ends with what looks wrong: a packet in flight past its expiry,
a packet whose owner has no heartbeat, a late heartbeat, no leader, an account at
its limit (among those read), a dead next hop.

With --json: { url, at, ilpAddress, health, workers, accounts, routes, inflight,
settlements, problems }, each section the admin API's JSON as it came (null when
it could not be read, with the reason in problems); accounts is the first page,
{ accounts, nextCursor }.
`

/** Something odd. `problem`: traffic is or will be refused or stuck; `note`: worth a look. */
export interface Finding {
  level: 'problem' | 'note'
  message: string
}

interface Section<T> {
  value: T | undefined
  error: FarmError | undefined
}

interface State {
  health: Section<{ status: number; body: HealthView | undefined }>
  workers: Section<WorkersView>
  accounts: Section<AccountsPage>
  routes: Section<RoutesView>
  inflight: Section<InflightEntry[]>
  settlements: Section<unknown>
}

export const inspectCommand: FarmCommand = {
  name: 'inspect',
  summary: ['inspect', "the farm's whole state and what looks wrong, for diagnosis"],
  scopes: { '': ['read'] },
  usage: USAGE,
  async run(ctx) {
    positionals(ctx, [], 'inspect')
    const state = await readState(ctx.client)
    failIfNothingRead(state)
    const ilpAddress = farmAddress(state)
    const findings = findProblems(state, ctx.now)
    if (ctx.json) {
      printJson({
        url: ctx.client.target.url,
        at: new Date(ctx.now).toISOString(),
        ilpAddress: ilpAddress ?? null,
        health: state.health.value ?? null,
        workers: state.workers.value ?? null,
        accounts: state.accounts.value ?? null,
        routes: state.routes.value ?? null,
        inflight: state.inflight.value ?? null,
        settlements: state.settlements.value ?? null,
        problems: findings,
      })
    } else {
      print(render(state, ilpAddress, findings, ctx.client.target.url, ctx.now))
    }
    // A dump that could not read part of the farm is a failure of the farm, even though the rest is printed.
    return sections(state).some((s) => s.error !== undefined) ? 1 : 0
  },
}

async function section<T>(read: () => Promise<T>): Promise<Section<T>> {
  try {
    return { value: await read(), error: undefined }
  } catch (err) {
    if (err instanceof FarmError) return { value: undefined, error: err }
    throw err
  }
}

async function readState(client: AdminClient): Promise<State> {
  const [health, workers, accounts, routes, inflight, settlements] = await Promise.all([
    section(() => client.health()),
    section(() => client.get<WorkersView>('/admin/workers')),
    section(() => readAccountsPage(client, { limit: INSPECT_PAGE })),
    section(() => client.get<RoutesView>('/admin/routes')),
    section(() => getInflight(client)),
    section(() => optional(client.get<unknown>('/admin/settlements'))),
  ])
  return { health, workers, accounts, routes, inflight, settlements }
}

/** A route this farm may not have (older farm): 404 reads as "none". */
async function optional<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read
  } catch (err) {
    if (err instanceof FarmError && err.status === 404) return undefined
    throw err
  }
}

function sections(state: State): Array<Section<unknown>> {
  return [state.health, state.workers, state.accounts, state.routes, state.inflight, state.settlements]
}

/** Unreachable, or the token refused everywhere: nothing to dump, the first error says why. */
function failIfNothingRead(state: State): void {
  const admin = [state.workers, state.accounts, state.routes, state.inflight]
  if (admin.every((s) => s.error !== undefined)) throw admin[0]!.error!
}

/** The farm's ILP address, as GET /admin/routes names it (children are routed under it by address). */
function farmAddress(state: State): string | undefined {
  return state.routes.value?.ilpAddress
}

// -- what looks wrong

function findProblems(state: State, now: number): Finding[] {
  return [
    ...unreadable(state),
    ...healthProblems(state.health.value),
    ...workerProblems(state.workers.value),
    ...inflightProblems(state.inflight.value, state.workers.value, now),
    ...accountProblems(state.accounts.value),
    ...routeProblems(state.routes.value),
  ]
}

function unreadable(state: State): Finding[] {
  const names: Array<[string, Section<unknown>]> = [
    ['health', state.health],
    ['workers', state.workers],
    ['accounts', state.accounts],
    ['routes', state.routes],
    ['packets in flight', state.inflight],
    ['settlements', state.settlements],
  ]
  return names
    .filter(([, s]) => s.error !== undefined)
    .map(([name, s]) => ({ level: 'problem', message: `could not read ${name}: ${s.error!.message.split('\n')[0]}` }))
}

function healthProblems(health: State['health']['value']): Finding[] {
  if (!health || health.status === 200) return []
  return [{ level: 'problem', message: `health check failed (HTTP ${health.status}, redis ${health.body?.redis ?? 'unknown'}): packets fail with T00` }]
}

function workerProblems(view: WorkersView | undefined): Finding[] {
  if (!view) return []
  const found: Finding[] = []
  if (view.workers.length === 0) found.push({ level: 'problem', message: 'no worker has a live heartbeat' })
  if (view.leader === null) {
    found.push({ level: 'problem', message: 'no leader: nobody sweeps expired packets of dead workers or announces routes' })
  } else if (!view.workers.some((w) => w.bootId === view.leader)) {
    found.push({ level: 'problem', message: `the leader ${view.leader} has no live heartbeat: its lease runs out, then another worker takes over` })
  }
  for (const w of view.workers.filter(heartbeatLate)) {
    found.push({ level: 'note', message: `worker ${w.bootId} (pid ${w.pid}) is late with its heartbeat: last ${duration(w.heartbeatAgeMs)} ago, TTL ${duration(w.ttlMs)}` })
  }
  return found
}

function inflightProblems(entries: InflightEntry[] | undefined, workers: WorkersView | undefined, now: number): Finding[] {
  if (!entries || !workers) return []
  const live = liveOwners(workers)
  const found: Finding[] = []
  for (const e of entries) {
    const flags = entryFlags(e, live, now)
    const what = `packet ${e.packetId} from ${e.incomingAccount} to ${e.outgoingAccount} (${e.inAmount})`
    const owner = e.bootId === '' ? 'an unrecorded owner' : `owner ${e.bootId}`
    if (flags.includes('EXPIRED')) {
      const why = flags.includes('OWNER DEAD') ? `${owner} has no heartbeat: the leader's sweeper should refund it` : `${owner} is alive and should settle or refund it`
      found.push({ level: 'problem', message: `${what} expired ${until(e.expiresAtMs, now)} and is still in flight; ${why}` })
    } else if (flags.includes('OWNER DEAD')) {
      found.push({ level: 'note', message: `${what}: ${owner} has no heartbeat; the sweeper refunds it once it expires (${until(e.expiresAtMs, now)})` })
    }
  }
  return found
}

function accountProblems(page: AccountsPage | undefined): Finding[] {
  const found: Finding[] = []
  for (const a of page?.accounts ?? []) {
    const flag = limitState(a)?.flag
    if (flag) found.push({ level: flag.startsWith('at') && !isUnfunded(a) ? 'problem' : 'note', message: limitSentence(a, flag) })
  }
  if (page && page.nextCursor !== null) {
    found.push({ level: 'note', message: `only the first ${plural(page.accounts.length, 'account')} were checked against their limits; more exist (after ${page.nextCursor})` })
  }
  return found
}

function routeProblems(view: RoutesView | undefined): Finding[] {
  const found: Finding[] = []
  for (const r of view?.routes ?? []) {
    if (r.candidates.length > 0 && r.candidates.every((c) => c.dead)) {
      found.push({ level: 'problem', message: `every next hop of ${r.prefix} is dead (${r.candidates.map((c) => c.account).join(', ')})` })
      continue
    }
    for (const c of r.candidates.filter((c) => c.dead || c.consecutiveFailures > 0)) {
      found.push({ level: 'note', message: `${r.prefix} → ${c.account}: ${candidateState(c)}` })
    }
  }
  return found
}

// -- the dump

function render(state: State, ilpAddress: string | undefined, findings: Finding[], url: string, now: number): string {
  const out: string[] = [`ilp-farm inspect of ${url} at ${new Date(now).toISOString()}`, '']
  const health = state.health.value
  out.push(`farm address:   ${ilpAddress ?? 'unknown (the routes could not be read)'}`)
  out.push(`health:         ${health ? `${health.body?.status ?? '?'} (HTTP ${health.status}, redis ${health.body?.redis ?? '?'})` : 'unreadable'}`)
  out.push(`routing policy: ${state.routes.value?.policy ?? 'unreadable'}`)
  out.push(...renderSection('Workers', state.workers, (v) => [`${plural(v.workers.length, 'live worker')} on ${plural(v.hosts.length, 'host')}, leader ${leaderLine(v)}`, ...(v.workers.length > 0 ? [workersTable(v, now)] : [])]))
  out.push(...renderSection('Accounts', state.accounts, (v) => [accountsLine(v), ...(v.accounts.length > 0 ? [accountsTable(v.accounts)] : [])]))
  out.push(...renderSection('Routes', state.routes, (v) => [plural(v.routes.length, 'prefix', 'prefixes'), ...(v.routes.length > 0 ? [routesTable(v)] : [])]))
  out.push(
    ...renderSection('In flight', state.inflight, (v) => [
      `${plural(v.length, 'packet')} in flight`,
      ...(v.length > 0 && state.workers.value ? [inflightTable(v, liveOwners(state.workers.value), now)] : []),
    ]),
  )
  if (state.settlements.value !== undefined) out.push(...renderSection('Settlements', state.settlements, renderGeneric))
  out.push('', `== ${findings.length === 0 ? 'No problems found' : `${plural(findings.length, 'finding')}`} ==`)
  for (const f of findings) out.push(`${f.level === 'problem' ? '!' : '-'} ${f.message}`)
  return out.join('\n')
}

/** How many accounts the section shows, and whether that is all of them. */
function accountsLine(page: AccountsPage): string {
  const shown = page.accounts.length
  if (page.nextCursor === null) return plural(shown, 'account')
  const where = 'the first in id order; ilp-farm accounts list shows them all'
  if (page.count !== undefined) return `${shown} of ${plural(page.count, 'account')} shown (${where})`
  return `first ${plural(shown, 'account')} shown, more exist (${where})`
}

function renderSection<T>(title: string, s: Section<T>, body: (value: T) => string[]): string[] {
  const lines = ['', `== ${title} ==`]
  if (s.error) return [...lines, `could not read: ${s.error.message}`]
  return s.value === undefined ? lines : [...lines, ...body(s.value)]
}

/** A section whose shape this CLI does not know in detail: a list of flat objects as a table, else JSON. */
function renderGeneric(value: unknown): string[] {
  const list = Array.isArray(value) ? value : undefined
  if (!list) return [JSON.stringify(value, null, 2)]
  if (list.length === 0) return ['none']
  const columns = [...new Set(list.flatMap((item) => (item !== null && typeof item === 'object' ? Object.keys(item) : [])))].slice(0, 10)
  const cell = (v: unknown) => (v === null || v === undefined ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v))
  const rows = list.map((item) => columns.map((c) => cell(item !== null && typeof item === 'object' ? (item as Record<string, unknown>)[c] : item)))
  return [plural(list.length, 'entry', 'entries'), table(columns, rows)]
}
