import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { DashboardFeed } from '../metrics/dashboard-feed.js'
import { DashboardSessions, SESSION_TTL_MS } from '../metrics/dashboard-sessions.js'
import { buildSnapshot, readAccountDetail } from '../metrics/dashboard-snapshot.js'
import type { FarmMetrics } from '../metrics/farm-metrics.js'
import type { PacketServices } from '../packet/context.js'
import { isValidAddressSegment } from '../util/address.js'
import { packageRoot } from '../util/package-root.js'
import { tooManyFailures } from './failed-auth.js'
import type { OperatorAuth } from './operator-auth.js'
import { grants, lacksScope, type Scope } from './scopes.js'

export interface DashboardDeps {
  services: PacketServices
  metrics: FarmMetrics
  /** The operator-token check (admin.token and admin.tokens, failed logins per IP): logging in takes DASHBOARD_SCOPES.login. */
  auth: OperatorAuth
  /**
   * The farm serves HTTPS, itself or behind a TLS proxy (an https publicUrl): the session cookie gets
   * `Secure` and the `__Host-` name (so no other site or subdomain can set or shadow it; Path=/).
   */
  secureCookie: boolean
}

const COOKIE = 'ilpfarm_dashboard'
const SECURE_COOKIE = `__Host-${COOKIE}`
/** A wrong token is answered this late: guessing the admin token through the login form is slow. */
const FAILED_LOGIN_DELAY_MS = 500

/** The page's own headers: nothing from elsewhere, no framing (the login form holds the admin token). */
const PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
}

interface Asset {
  readonly body: Buffer
  readonly type: string
}

/** src/http/dashboard/ next to this module (tsx, tests), or in the package when this runs from dist/. */
function assetsDir(): string | undefined {
  const candidates = [join(dirname(fileURLToPath(import.meta.url)), 'dashboard')]
  try {
    candidates.push(join(packageRoot(), 'src', 'http', 'dashboard'))
  } catch {
    // not inside the package folder: only next to this module
  }
  return candidates.find((dir) => existsSync(join(dir, 'index.html')))
}

/** The page, its script and style, and chart.js and cytoscape from node_modules (nothing from the internet). */
function loadAssets(dir: string): Map<string, Asset> {
  const require = createRequire(import.meta.url)
  const vendor = (pkg: string, file: string) => readFileSync(join(dirname(require.resolve(pkg)), file))
  const js = 'text/javascript; charset=utf-8'
  return new Map<string, Asset>([
    ['/dashboard', { body: readFileSync(join(dir, 'index.html')), type: 'text/html; charset=utf-8' }],
    ['/dashboard/app.js', { body: readFileSync(join(dir, 'app.js')), type: js }],
    ['/dashboard/app.css', { body: readFileSync(join(dir, 'app.css')), type: 'text/css; charset=utf-8' }],
    // chart.js resolves to dist/chart.cjs, cytoscape to dist/cytoscape.cjs.js: their browser builds are next to them
    ['/dashboard/vendor/chart.js', { body: vendor('chart.js', 'chart.umd.min.js'), type: js }],
    ['/dashboard/vendor/cytoscape.js', { body: vendor('cytoscape', 'cytoscape.min.js'), type: js }],
  ])
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined
  for (const part of header.split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim()
  }
  return undefined
}

function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  if (secure) return `${SECURE_COOKIE}=${value}; Path=/; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict; Secure`
  return `${COOKIE}=${value}; Path=/dashboard; Max-Age=${maxAgeSeconds}; HttpOnly; SameSite=Strict`
}

/**
 * What the dashboard's parts need. Its views (the event stream, an account
 * looked up by id) only read; it has no actions. Logging in needs the views'
 * scope too: a session that could see nothing would be of no use.
 */
export const DASHBOARD_SCOPES: Readonly<Record<'login' | 'events' | 'account', Scope>> = {
  login: 'read',
  events: 'read',
  account: 'read',
}

/** The token of a login body `{ "token": "..." }`; undefined when there is none (it guessed nothing). */
function loginToken(body: unknown): string | undefined {
  const token = body !== null && typeof body === 'object' ? (body as Record<string, unknown>).token : undefined
  return typeof token === 'string' ? token : undefined
}

/**
 * /dashboard: the operator's live view of the farm (docs/METRICS.md). The
 * page is static; it logs in with an operator token holding `read` (POST /dashboard/login,
 * which sets an HttpOnly SameSite=Strict session cookie, the session living
 * in Redis so every worker accepts it), then follows /dashboard/events
 * (server-sent events, one snapshot a second) and looks accounts up by id
 * (/dashboard/accounts/:id): a snapshot holds only the pinned and the most
 * recently active accounts, never every account.
 */
export function dashboard(deps: DashboardDeps) {
  const { services, metrics, auth } = deps

  return async function plugin(app: FastifyInstance): Promise<void> {
    const dir = assetsDir()
    if (dir === undefined) {
      services.log.warn('dashboard: src/http/dashboard/ not found next to the code or in the package; /dashboard is not served')
      return
    }
    const assets = loadAssets(dir)
    const sessions = new DashboardSessions(services.ledger.redis, services.ledger.keys.prefix)
    const feed = new DashboardFeed({ build: () => buildSnapshot(services, metrics), sessions, log: services.log })
    // open event streams would keep the HTTP server's close waiting forever
    app.addHook('preClose', (done) => {
      feed.close()
      done()
    })
    app.addHook('onRequest', async (_request, reply) => {
      reply.headers(PAGE_HEADERS)
    })

    const sessionOf = (request: FastifyRequest) => cookieValue(request.headers.cookie, deps.secureCookie ? SECURE_COOKIE : COOKIE)
    /**
     * The request's session id when it is valid and its token held `scope`; else the reply sent
     * (401 no session, 403 naming the scope).
     */
    const sessionWith = async (request: FastifyRequest, reply: FastifyReply, scope: Scope): Promise<string | FastifyReply> => {
      const id = sessionOf(request)
      const scopes = await sessions.scopes(id)
      if (id === undefined || scopes === undefined) return reply.code(401).send({ error: 'log in first' })
      if (!grants(scopes, scope)) return reply.code(403).send(lacksScope(scope))
      return id
    }
    const serve = (path: string) => (_request: FastifyRequest, reply: FastifyReply) => {
      const asset = assets.get(path)!
      return reply.type(asset.type).header('cache-control', 'no-cache').send(asset.body)
    }
    for (const path of assets.keys()) app.get(path, serve(path))
    app.get('/dashboard/', serve('/dashboard'))

    // the token comes in the form's body, not a header: the check is operatorAuth's, with this page's answers
    app.post<{ Body: unknown }>('/dashboard/login', async (request, reply) => {
      const checked = await auth.check(request.ip, loginToken(request.body), DASHBOARD_SCOPES.login)
      if (!checked.ok && checked.status === 429) return tooManyFailures(reply, checked.retryAfterMs)
      if (!checked.ok && checked.status === 401) {
        await new Promise((resolve) => setTimeout(resolve, FAILED_LOGIN_DELAY_MS))
        return reply.code(401).header('cache-control', 'no-store').send({ error: 'wrong admin token' })
      }
      if (!checked.ok) return reply.code(403).header('cache-control', 'no-store').send(lacksScope(DASHBOARD_SCOPES.login))
      const id = await sessions.create(checked.token.scopes)
      return reply.code(204).header('cache-control', 'no-store').header('set-cookie', sessionCookie(id, SESSION_TTL_MS / 1000, deps.secureCookie)).send()
    })

    app.post('/dashboard/logout', async (request, reply) => {
      await sessions.end(sessionOf(request))
      return reply.code(204).header('set-cookie', sessionCookie('', 0, deps.secureCookie)).send()
    })

    // always 200 (a 401 here would be logged as an error by the browser on every visit before login)
    app.get('/dashboard/session', async (request, reply) => {
      return reply.header('cache-control', 'no-store').send({ loggedIn: await sessions.valid(sessionOf(request)) })
    })

    app.get('/dashboard/events', async (request, reply) => {
      const id = await sessionWith(request, reply, DASHBOARD_SCOPES.events)
      if (typeof id !== 'string') return id
      reply.hijack()
      for (const [name, value] of Object.entries(PAGE_HEADERS)) reply.raw.setHeader(name, value)
      feed.add(reply.raw, id)
    })

    // the search box: one account by id, read now, with the same session as the event stream
    app.get<{ Params: { id: string } }>('/dashboard/accounts/:id', async (request, reply) => {
      reply.header('cache-control', 'no-store')
      const id = await sessionWith(request, reply, DASHBOARD_SCOPES.account)
      if (typeof id !== 'string') return id
      const account = request.params.id
      const detail = isValidAddressSegment(account) ? await readAccountDetail(services, account) : undefined
      if (detail === undefined) return reply.code(404).send({ error: `no account ${account}` })
      return detail
    })
  }
}
