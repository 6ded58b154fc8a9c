import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import { type AddressInfo, connect, type Socket } from 'node:net'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTunnelServer, type TunnelServer } from '../../src/tunnel/server.js'
import { TunnelClient } from '../../packages/client/src/tunnel.js'
import { eventually, sleep } from '../helpers/async.js'

/**
 * The tunnel server against the client's own tunnel client (the localtunnel
 * protocol plus a secret per tunnel), real sockets only: a local HTTP server
 * becomes reachable by path (and by subdomain), and a connection or a
 * registration that cannot show the tunnel's secret gets nothing.
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
const tunnels: TunnelClient[] = []

beforeAll(async () => {
  server = await startTunnelServer({ domain: 'tunnel.test', graceMs: 1_000, socketWaitMs: 300, handshakeMs: 500 })
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

async function open(subdomain?: string, secret?: string): Promise<TunnelClient> {
  const tunnel = await TunnelClient.connect({ localPort, host: server.url, localHost: '127.0.0.1', subdomain, ...(secret ? { secret } : {}) })
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

  it('a connection that does not send the secret first never gets a request; the owner still does', async () => {
    const created = JSON.parse((await get(`${server.url}/?new`)).body) as { id: string; port: number; secret: string }
    expect(created.secret).toMatch(/^[0-9a-f]{64}$/)
    // The attacker connects first: silent, then with a wrong line.
    const silent = await rawConnect(created.port)
    const wrong = await rawConnect(created.port)
    wrong.socket.write(`${'0'.repeat(64)}\n`)
    await eventually(() => expect(wrong.closed()).toBe(true))
    await eventually(() => expect(silent.closed()).toBe(true), 2_000) // handshakeMs
    expect(server.tunnels().find((t) => t.id === created.id)?.connectedSockets).toBe(0)
    // With a silent attacker connected and no owner, a public request finds no connection (504), the attacker reads nothing.
    const sneaky = await rawConnect(created.port)
    expect((await get(`${server.url}/${created.id}/secret-path`, { authorization: 'Bearer farm-token' })).status).toBe(504)
    expect(sneaky.received()).toBe('')
    // The owner proves itself and serves; the attacker's connection is closed unread.
    const owner = await rawConnect(created.port)
    owner.socket.write(`${created.secret}\n`)
    await eventually(() => expect(server.tunnels().find((t) => t.id === created.id)?.connectedSockets).toBe(1))
    owner.socket.on('data', () => owner.socket.write('HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nowner'))
    const answer = await get(`${server.url}/${created.id}/secret-path`)
    expect(answer.body).toBe('owner')
    await eventually(() => expect(sneaky.closed()).toBe(true), 2_000)
    expect(sneaky.received()).toBe('')
    owner.socket.destroy()
  })

  it('a dropped id stays reserved for the holder of its secret', async () => {
    const owner = await open('reserved-id')
    expect(owner.secret).toMatch(/^[0-9a-f]{64}$/)
    await eventually(() => expect(server.tunnels().find((t) => t.id === 'reserved-id')?.connectedSockets).toBe(10))
    // While it is live, another client asking for it gets another id.
    expect(JSON.parse((await get(`${server.url}/reserved-id`)).body).id).not.toBe('reserved-id')
    owner.close()
    await eventually(() => expect(server.tunnels().find((t) => t.id === 'reserved-id')).toBeUndefined(), 5_000)
    // Gone past the grace time: someone else asking for the id (with no or a wrong secret) still gets another one.
    expect(JSON.parse((await get(`${server.url}/reserved-id`)).body).id).not.toBe('reserved-id')
    expect(JSON.parse((await get(`${server.url}/reserved-id`, { 'x-tunnel-secret': 'f'.repeat(64) })).body).id).not.toBe('reserved-id')
    // The owner gets it back with its secret and serves again.
    const back = await open('reserved-id', owner.secret)
    expect(back.id).toBe('reserved-id')
    expect(back.secret).toBe(owner.secret)
    await eventually(() => expect(server.tunnels().find((t) => t.id === 'reserved-id')?.connectedSockets).toBe(10))
    expect((await get(`${server.url}/reserved-id/again`)).body).toBe('GET /again ')
  })
})

async function rawConnect(port: number): Promise<{ socket: Socket; received(): string; closed(): boolean }> {
  const socket = connect({ host: '127.0.0.1', port })
  let data = ''
  let closed = false
  socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')))
  socket.on('error', () => undefined)
  socket.on('close', () => (closed = true))
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  await sleep(20)
  return { socket, received: () => data, closed: () => closed }
}
