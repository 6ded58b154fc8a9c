import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import localtunnel from 'localtunnel'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTunnelServer, type TunnelServer } from '../../src/client/tunnel-server.js'
import { eventually } from '../helpers/async.js'

/**
 * The tunnel server against the real npm `localtunnel` client, real sockets
 * only: a local HTTP server becomes reachable by path (and by subdomain).
 */

interface Seen {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
}

let server: TunnelServer
let local: Server
let localPort: number
const seen: Seen[] = []
const tunnels: localtunnel.Tunnel[] = []

beforeAll(async () => {
  server = await startTunnelServer({ domain: 'tunnel.test', graceMs: 1_000, socketWaitMs: 300 })
  local = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (chunk: string) => (body += chunk))
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body })
      res.writeHead(req.url === '/teapot' ? 418 : 200, { 'content-type': 'text/plain', 'x-local': 'yes' })
      res.end(`${req.method} ${req.url} ${body}`)
    })
  })
  await new Promise<void>((resolve) => local.listen(0, '127.0.0.1', resolve))
  localPort = (local.address() as AddressInfo).port
})

afterAll(async () => {
  for (const t of tunnels) t.close()
  await server?.close()
  local?.closeAllConnections()
  await new Promise<void>((resolve) => local?.close(() => resolve()))
})

async function open(subdomain?: string): Promise<localtunnel.Tunnel> {
  const tunnel = await localtunnel({ port: localPort, host: server.url, local_host: '127.0.0.1', subdomain })
  tunnel.on('error', () => undefined)
  tunnels.push(tunnel)
  return tunnel
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const res = await request(url, { headers })
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers as IncomingHttpHeaders }
}

describe('tunnel server', () => {
  it('hands out a tunnel by path and relays requests to the local server, prefix stripped', async () => {
    const tunnel = await open()
    const id = server.tunnels()[0]!.id
    expect(tunnel.url).toBe(`http://${id}.tunnel.test`) // with a domain; without one: <server URL>/<id>
    const byPath = `${server.url}/${id}`
    await eventually(() => expect(server.tunnels()[0]!.connectedSockets).toBe(10))

    const res = await request(`${byPath}/some/path?x=1&y=2`, { method: 'POST', body: 'hello', headers: { 'content-type': 'text/plain', 'x-custom': 'kept' } })
    expect(res.statusCode).toBe(200)
    expect(res.headers['x-local']).toBe('yes')
    expect(await res.body.text()).toBe('POST /some/path?x=1&y=2 hello')
    const hit = seen.at(-1)!
    expect(hit.url).toBe('/some/path?x=1&y=2')
    expect(hit.headers['x-custom']).toBe('kept')
    expect(hit.headers['x-forwarded-for']).toBe('127.0.0.1')

    expect((await get(`${byPath}/teapot`)).status).toBe(418)
    expect((await get(`${byPath}/`)).body).toBe('GET / ')
  })

  it('relays many concurrent requests over its connection pool', async () => {
    const id = server.tunnels()[0]!.id
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`${server.url}/${id}/n${i}`)))
    expect(answers.map((a) => a.body)).toEqual(Array.from({ length: 50 }, (_, i) => `GET /n${i} `))
  })

  it('routes by subdomain when a domain is set', async () => {
    const id = server.tunnels()[0]!.id
    const res = await get(`${server.url}/by/host`, { host: `${id}.tunnel.test` })
    expect(res.body).toBe('GET /by/host ')
    expect((await get(`${server.url}/x`, { host: 'nobody.tunnel.test' })).status).toBe(404)
  })

  it('gives a requested id when free, another one when taken; refuses invalid ids', async () => {
    const a = await open('my-tunnel')
    expect(a.url).toBe('http://my-tunnel.tunnel.test')
    const b = await open('my-tunnel')
    expect(b.url).not.toBe(a.url)
    const bad = await get(`${server.url}/No_Such_Id!`)
    expect(bad.status).toBe(403)
    expect((await get(`${server.url}/api/status`)).body).toBe(JSON.stringify({ tunnels: server.tunnels().length }))
  })

  it('answers 404 for an unknown tunnel and 504 when a tunnel has no free connection in time', async () => {
    expect((await get(`${server.url}/nosuchtunnel/x`)).status).toBe(404)
    // A tunnel whose client never connects: the request waits socketWaitMs, then 504.
    const created = JSON.parse((await get(`${server.url}/?new`)).body) as { id: string; port: number; max_conn_count: number; url: string }
    expect(created).toMatchObject({ max_conn_count: 10, url: `http://${created.id}.tunnel.test` })
    expect((await get(`${server.url}/${created.id}/x`)).status).toBe(504)
  })

  it('removes a tunnel once its client has been gone for the grace time', async () => {
    const tunnel = await open('short-lived')
    await eventually(() => expect(server.tunnels().find((t) => t.id === 'short-lived')?.connectedSockets).toBe(10))
    tunnel.close()
    await eventually(() => expect(server.tunnels().find((t) => t.id === 'short-lived')).toBeUndefined(), 5_000)
    expect((await get(`${server.url}/short-lived/x`)).status).toBe(404)
  })
})
