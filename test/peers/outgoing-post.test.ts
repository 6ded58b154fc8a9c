import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OutgoingError } from '../../src/packet/ports.js'
import { MAX_REPLY_BYTES, post } from '../../src/peers/outgoing.js'

/** The forward step's one POST: status, body, size limit and deadline, against a real HTTP server. */
let server: Server
let pool: Pool
let requests = 0

beforeAll(async () => {
  server = createServer((req, res) => {
    requests++
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      switch (req.url) {
        case '/echo':
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-many': 'a' }).end(body)
          break
        case '/accepted':
          res.writeHead(202).end()
          break
        case '/error':
          res.writeHead(500).end('no')
          break
        case '/huge':
          res.writeHead(200).end(Buffer.alloc(MAX_REPLY_BYTES + 1000, 1))
          break
        case '/slow':
          setTimeout(() => res.writeHead(200).end(body), 300)
          break
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, { connections: 1 })
})

afterAll(async () => {
  await pool?.destroy()
  await new Promise((resolve) => server?.close(resolve))
})

const headers = { 'content-type': 'application/octet-stream' }
const reason = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (err: unknown) => (err instanceof OutgoingError ? `${err.reason}: ${err.message}` : String(err)),
  )

describe('post', () => {
  it('resolves with the body of the expected status, and only that status', async () => {
    const packet = Buffer.from('hello')
    expect((await post(pool, '/echo', headers, packet, 2000, 200)).toString()).toBe('hello')
    expect((await post(pool, '/accepted', headers, packet, 2000, 202)).length).toBe(0)
    expect(await reason(post(pool, '/accepted', headers, packet, 2000, 200))).toBe('unreachable: next hop answered HTTP 202')
    expect(await reason(post(pool, '/error', headers, packet, 2000, 200))).toBe('unavailable: next hop answered HTTP 500')
  })

  it('refuses a reply larger than MAX_REPLY_BYTES', async () => {
    expect(await reason(post(pool, '/huge', headers, Buffer.from('x'), 2000, 200))).toBe(`unreachable: next hop answered more than ${MAX_REPLY_BYTES} bytes`)
    // the pool still works afterwards
    expect((await post(pool, '/echo', headers, Buffer.from('again'), 2000, 200)).toString()).toBe('again')
  })

  it('times out at the deadline; a request still queued then is never sent', async () => {
    const before = requests
    const slow = reason(post(pool, '/slow', headers, Buffer.from('1'), 100, 200))
    // one connection: this one waits in the queue behind the slow one, and its deadline passes there
    const queued = reason(post(pool, '/echo', headers, Buffer.from('2'), 50, 200))
    expect(await slow).toBe('timeout: no answer from the next hop within 100 ms')
    expect(await queued).toBe('timeout: no answer from the next hop within 50 ms')
    await new Promise((r) => setTimeout(r, 400))
    expect(requests - before).toBe(1)
  })
})
