// GET /admin/openapi.json against a real farm: the document, the routes the farm serves and docs/ADMIN-API.md name the same routes and scopes.
import { readFileSync } from 'node:fs'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ADMIN_ROUTE_SCOPES } from '../../src/http/admin.js'
import { account, ADMIN_TOKEN, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

type Schema = Record<string, unknown> & { required?: string[]; allOf?: Schema[]; type?: string; properties?: Record<string, Schema> }
interface Operation {
  security?: Array<Record<string, string[]>>
  parameters?: Array<{ in: string; name: string; required?: boolean; schema: Schema }>
  requestBody?: { content: Record<string, { schema: Schema }> }
  responses: Record<string, unknown>
}
interface OpenApi {
  openapi: string
  info: { title: string; version: string }
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes: Record<string, { type: string; scheme: string }> }
}

const READ_TOKEN = 'openapi-read-token-01'
const METHODS = ['get', 'post', 'put', 'delete', 'patch', 'head', 'options']

let redis: TestRedis
let farm: TestFarm
let document: OpenApi

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [account('alice')], {
    admin: { token: ADMIN_TOKEN, tokens: [{ name: 'reader', token: READ_TOKEN, scopes: ['read'] }, { name: 'scraper', token: 'openapi-metrics-token', scopes: ['metrics'] }] },
  })
  const res = await request(`${farm.url}/admin/openapi.json`, { headers: { authorization: `Bearer ${READ_TOKEN}` } })
  expect(res.statusCode).toBe(200)
  document = (await res.body.json()) as OpenApi
})

afterAll(async () => {
  await farm?.close()
  await redis?.close()
})

/** `METHOD /admin/path/{param}` of every operation of the document, with the scope its security names. */
function documented(): Map<string, string> {
  const routes = new Map<string, string>()
  for (const [path, item] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(item)) {
      if (!METHODS.includes(method)) continue
      const scopes = operation.security?.flatMap((s) => s.operatorToken ?? []) ?? []
      expect(scopes, `${method} ${path}`).toHaveLength(1)
      routes.set(`${method.toUpperCase()} ${path}`, scopes[0]!)
    }
  }
  return routes
}

/** A route of the fastify table (`:id`) as OpenAPI writes it (`{id}`). */
const openApiPath = (key: string) => key.replace(/:([A-Za-z]+)/g, '{$1}')

/** The routes and scopes of docs/ADMIN-API.md's scope table: one row per scope, each route in backquotes. */
function adminApiDoc(): Map<string, string> {
  const text = readFileSync(new URL('../../docs/ADMIN-API.md', import.meta.url), 'utf8')
  const routes = new Map<string, string>()
  for (const row of text.split('\n').filter((line) => /^\| `[a-z]+` \|/.test(line))) {
    const scope = /^\| `([a-z]+)` \|/.exec(row)![1]!
    for (const m of row.matchAll(/`(GET|POST|PUT|DELETE) (\/admin\/[^`\s]*)`/g)) routes.set(`${m[1]} ${m[2]}`, scope)
  }
  return routes
}

describe('GET /admin/openapi.json', () => {
  it('is OpenAPI 3.1 with the operator token as a bearer scheme; it needs read', async () => {
    expect(document.openapi).toBe('3.1.0')
    expect(document.info.title).toBe('ilp-farm admin API')
    expect(document.components.securitySchemes.operatorToken).toMatchObject({ type: 'http', scheme: 'bearer' })
    expect((await request(`${farm.url}/admin/openapi.json`)).statusCode).toBe(401)
    const refused = await request(`${farm.url}/admin/openapi.json`, { headers: { authorization: 'Bearer openapi-metrics-token' } })
    expect(refused.statusCode).toBe(403)
    expect(await refused.body.json()).toEqual({ error: 'this token lacks the scope read', scope: 'read' })
  })

  it('has an operation for every /admin route the farm serves, and none it does not serve, each with its scope', () => {
    const routes = documented()
    const served = new Map(Object.entries(ADMIN_ROUTE_SCOPES).map(([key, scope]) => [openApiPath(key), scope]))
    expect(new Map([...routes].sort())).toEqual(new Map([...served].sort()))
    for (const key of Object.keys(ADMIN_ROUTE_SCOPES)) {
      const [method, url] = key.split(' ') as [string, string]
      expect(farm.worker.app.hasRoute({ method: method as 'GET', url }), key).toBe(true)
    }
    // a route that is not in the table is not served (the table refuses it at start): nothing else under /admin
    expect(farm.worker.app.hasRoute({ method: 'GET', url: '/admin/nothing' })).toBe(false)
  })

  it('names the same routes and scopes as docs/ADMIN-API.md', () => {
    expect(new Map([...adminApiDoc()].sort())).toEqual(new Map([...documented()].sort()))
  })

  it('describes each operation: its parameters, its body, its answers and the auth refusals', () => {
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const where = `${method} ${path}`
        for (const name of [...path.matchAll(/\{([A-Za-z]+)\}/g)].map((m) => m[1])) {
          expect(operation.parameters?.find((p) => p.in === 'path' && p.name === name), `${where}: path parameter ${name}`).toMatchObject({ required: true })
        }
        expect(Object.keys(operation.responses).some((code) => /^2\d\d$/.test(code)), where).toBe(true)
        for (const code of ['401', '403', '429']) expect(operation.responses[code], `${where}: ${code}`).toBeDefined()
        if (method === 'post' && !path.endsWith('/token') || method === 'put') expect(operation.requestBody?.content['application/json']?.schema, where).toBeDefined()
      }
    }
    const deposit = document.paths['/admin/accounts/{id}/deposits']!.post!
    expect(deposit.parameters?.find((p) => p.in === 'header')).toMatchObject({ name: 'idempotency-key', required: true })
  })
})

describe('the documented schemas are the ones requests are checked with', () => {
  /** The required fields of a body schema, through allOf. */
  const required = (schema: Schema): string[] => [...(schema.required ?? []), ...(schema.allOf ?? []).flatMap(required)]
  const typeOf = (schema: Schema): string | undefined => schema.type ?? schema.allOf?.map(typeOf).find((t) => t !== undefined)

  it('a body without a required field is 400 naming that field; a body of the wrong type is 400 saying what it must be', async () => {
    let checked = 0
    for (const [path, item] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(item)) {
        const schema = operation.requestBody?.content['application/json']?.schema
        if (schema === undefined) continue
        const url = `${farm.url}${path.replace('{id}', 'alice').replace('{prefix}', 'g.openapi')}`
        const send = async (body: unknown) => {
          const res = await request(url, {
            method: method.toUpperCase() as 'POST',
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json', 'idempotency-key': 'openapi-test' },
            body: JSON.stringify(body),
          })
          return { status: res.statusCode, json: (await res.body.json()) as { error: string } }
        }
        const wrongType = typeOf(schema) === 'array' ? { not: 'an array' } : ['not', 'an', 'object']
        const refused = await send(wrongType)
        expect(refused, `${method} ${path} with ${JSON.stringify(wrongType)}`).toMatchObject({ status: 400, json: { error: expect.stringMatching(/^body: must be a JSON (object|array)/) } })
        const first = required(schema)[0]
        if (first !== undefined) {
          expect(await send({}), `${method} ${path} with {}`).toMatchObject({ status: 400, json: { error: expect.stringMatching(new RegExp(`^${first}: is required`)) } })
        }
        checked++
      }
    }
    expect(checked).toBeGreaterThanOrEqual(7)
  })

  it('the token is checked first: a refused one hears 401 or 403 whatever its body', async () => {
    const post = async (token: string | undefined) => {
      const res = await request(`${farm.url}/admin/accounts/alice/deposits`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) },
        body: '[1, 2]',
      })
      return { status: res.statusCode, json: await res.body.json() }
    }
    expect(await post(undefined)).toEqual({ status: 401, json: { error: 'unauthorized' } })
    expect(await post(READ_TOKEN)).toEqual({ status: 403, json: { error: 'this token lacks the scope money', scope: 'money' } })
    expect((await post(ADMIN_TOKEN)).status).toBe(400)
  })

  it('query and header parameters are checked as documented', async () => {
    const get = async (path: string, headers: Record<string, string> = {}, method: 'GET' | 'POST' | 'DELETE' = 'GET', body?: unknown) => {
      const res = await request(`${farm.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      })
      return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }
    }
    const limit = document.paths['/admin/accounts']!.get!.parameters!.find((p) => p.name === 'limit')!.schema
    expect(limit).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 })
    for (const bad of ['0', '1001', '1.5', 'ten']) expect(await get(`/admin/accounts?limit=${bad}`)).toEqual({ status: 400, json: { error: 'limit: must be a whole number from 1 to 1000' } })
    expect((await get('/admin/accounts?limit=1')).json).toMatchObject({ accounts: [{ id: 'alice' }] })
    expect(await get('/admin/accounts?cursor=a.b')).toEqual({ status: 400, json: { error: 'cursor: must be an account id (the nextCursor of the previous page)' } })
    expect(await get('/admin/accounts/alice/deposits', {}, 'POST', { amount: '5' })).toEqual({
      status: 400,
      json: { error: 'Idempotency-Key: is required (a header of 1 to 200 characters; a retry with the same key applies once)' },
    })
    for (const amount of ['0', '-5', '05', 5, '18446744073709551616']) {
      expect(await get('/admin/accounts/alice/deposits', { 'idempotency-key': `k-${String(amount)}` }, 'POST', { amount })).toEqual({
        status: 400,
        json: { error: 'amount: must be a positive integer decimal string in quotes, no larger than 18446744073709551615' },
      })
    }
    expect(await get('/admin/routes/not..a.prefix', {}, 'DELETE')).toEqual({ status: 400, json: { error: 'prefix: must be an ILP address prefix such as "g.bank" or "test" (RFC 15)' } })
  })
})
