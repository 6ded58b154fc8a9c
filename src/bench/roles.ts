/**
 * The bench's helper processes, forked from its entry (main.ts) with
 * `--role receiver` or `--role floor`: the receiver fulfills every prepare,
 * the floor is one pass-through Node HTTP hop (the baseline the farm is
 * compared with). Each tells the bench its URL over IPC once it listens.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deserializeIlpPrepare, serializeIlpFulfill } from 'ilp-packet'
import { Pool } from 'undici'
import { ENV_SECRET, fulfillmentFor, OCTET, RECEIVER_TOKEN } from './packets.js'

/** The module the roles run from: main.ts under tsx, main.js once built. */
export const ROLE_ENTRY = fileURLToPath(new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url))

const ENV_TARGET = 'ILP_BENCH_TARGET'
/** Same per-peer connection count as the farm's OutgoingClient. */
const FORWARD_CONNECTIONS = 128

type ChildMessage = { type: 'ready'; url: string }

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** A child role ends with its parent: the IPC channel closes when the bench goes away. */
function announce(server: Server, path: string): void {
  server.keepAliveTimeout = 65_000
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}${path}` } satisfies ChildMessage)
  })
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
}

function runReceiver(): void {
  const secret = Buffer.from(process.env[ENV_SECRET] ?? '', 'hex')
  const empty = Buffer.alloc(0)
  const server = createServer((req, res) => {
    readBody(req).then(
      (body) => {
        let answer: Buffer
        try {
          const prepare = deserializeIlpPrepare(body)
          answer = serializeIlpFulfill({ fulfillment: fulfillmentFor(secret, prepare.data), data: empty })
        } catch {
          res.writeHead(400).end()
          return
        }
        res.writeHead(200, { 'content-type': OCTET }).end(answer)
      },
      () => res.destroy(),
    )
  })
  announce(server, '/ilp')
}

function runFloor(): void {
  const target = new URL(process.env[ENV_TARGET] ?? '')
  const pool = new Pool(target.origin, { connections: FORWARD_CONNECTIONS, keepAliveTimeout: 30_000 })
  const path = `${target.pathname}${target.search}`
  const headers = { 'content-type': OCTET, authorization: `Bearer ${RECEIVER_TOKEN}` }
  const server = createServer((req, res) => {
    readBody(req)
      .then(async (body) => {
        const answer = await pool.request({ method: 'POST', path, headers, body })
        const buf = Buffer.from(await answer.body.arrayBuffer())
        res.writeHead(answer.statusCode, { 'content-type': OCTET }).end(buf)
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end()
        else res.destroy()
      })
  })
  announce(server, '/accounts/sender/ilp')
}

/** Runs `role` in this process (it then lives until the bench goes away); false for no such role. */
export function runRole(role: string | undefined): boolean {
  if (role === 'receiver') runReceiver()
  else if (role === 'floor') runFloor()
  else return false
  return true
}

/** Forks a role and waits for its URL; `children` gets the process at once, so that it is stopped even if it never gets ready. */
export async function startRole(role: 'receiver' | 'floor', env: Record<string, string>, children: ChildProcess[]): Promise<{ child: ChildProcess; url: string }> {
  const child = fork(ROLE_ENTRY, ['--role', role], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  children.push(child)
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within 10 s`)), 10_000)
    child.once('message', (m: ChildMessage) => {
      clearTimeout(timer)
      resolve(m.url)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${role} exited (${signal ?? `code ${code}`}) before it was ready`))
    })
  })
  child.removeAllListeners('exit')
  return { child, url }
}

/** The environment that points the floor at the receiver. */
export function floorEnv(receiverUrl: string): Record<string, string> {
  return { [ENV_TARGET]: receiverUrl }
}
