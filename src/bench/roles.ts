/**
 * The bench's helper processes, forked from its entry (main.ts) with
 * `--role receiver`, `--role floor`, `--role redis-floor` or `--role connector`:
 * the receiver fulfills every prepare, the floor is one pass-through Node
 * HTTP hop (the baseline the farm is compared with), the redis floor is the
 * same hop paying the least that keeping a record of each packet in Redis
 * costs, the connector is ilp-connector, the reference connector, between the
 * same sender and receiver. Each tells the bench its URL over IPC once it
 * listens.
 */
import { type ChildProcess, fork } from 'node:child_process'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { deserializeIlpPrepare, serializeIlpFulfill } from 'ilp-packet'
import { Redis } from 'ioredis'
import { Pool } from 'undici'
import { freePort } from '../farm/embedded-redis.js'
import { CallBatcher } from '../store/batcher.js'
import { ENV_SECRET, fulfillmentFor, OCTET, RECEIVER_TOKEN, SENDER_TOKEN } from './packets.js'

/** The module the roles run from: main.ts under tsx, main.js once built. */
export const ROLE_ENTRY = fileURLToPath(new URL(`./main${extname(fileURLToPath(import.meta.url))}`, import.meta.url))

const ENV_TARGET = 'ILP_BENCH_TARGET'
/** The redis floor's Redis: the farms' single Redis, its append-only file on. */
const ENV_REDIS = 'ILP_BENCH_REDIS'
/** The redis floor's records: one hash, as a farm keeps an account's packets in flight. */
const REDIS_FLOOR_KEY = 'bench:redis-floor:in-flight'
/** Same per-peer connection count as the farm's OutgoingClient. */
const FORWARD_CONNECTIONS = 128

type ChildMessage = { type: 'ready'; url: string }

/** The helper processes main.ts runs with --role. */
export type RoleName = 'receiver' | 'floor' | 'redis-floor' | 'connector'

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

/** A child role ends with its parent: the IPC channel closes when the bench goes away. */
function endWithParent(): void {
  process.on('disconnect', () => process.exit(0))
  process.on('SIGTERM', () => process.exit(0))
}

function announce(server: Server, path: string): void {
  server.keepAliveTimeout = 65_000
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as AddressInfo
    process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}${path}` } satisfies ChildMessage)
  })
  endWithParent()
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
  serveFloor(undefined)
}

/** Where the redis floor keeps a packet's record while it is forwarded. */
interface PacketRecords {
  write(id: string, record: string): Promise<unknown>
  delete(id: string): Promise<unknown>
}

/**
 * The floor with the least that any farm recording each packet in Redis must
 * pay: a write of the packet's record before it is forwarded and its deletion
 * once answered, both waited for. The packets of one turn of the event loop
 * share one HSET and one HDEL, batched as the farm's script calls are
 * (CallBatcher); no script, no balance, nothing read. What the farm does
 * beyond this is its ledger's own cost.
 */
function runRedisFloor(): void {
  const redis = new Redis(process.env[ENV_REDIS] ?? '', { enableAutoPipelining: true, maxRetriesPerRequest: 1 })
  redis.on('error', () => {
    // a failed call answers its packet 502: counted as not fulfilled
  })
  const done = (n: number) => new Array<string>(n).fill('OK')
  const writes = new CallBatcher<[string, string]>(async (batch) => {
    await redis.hset(REDIS_FLOOR_KEY, ...batch.flat())
    return done(batch.length)
  })
  const deletes = new CallBatcher<string>(async (ids) => {
    await redis.hdel(REDIS_FLOOR_KEY, ...ids)
    return done(ids.length)
  })
  serveFloor({ write: (id, record) => writes.call([id, record]), delete: (id) => deletes.call(id) })
}

/** The pass-through hop; with `records`, each packet's record kept in Redis while it is forwarded. */
function serveFloor(records: PacketRecords | undefined): void {
  const target = new URL(process.env[ENV_TARGET] ?? '')
  const pool = new Pool(target.origin, { connections: FORWARD_CONNECTIONS, keepAliveTimeout: 30_000 })
  const path = `${target.pathname}${target.search}`
  const headers = { 'content-type': OCTET, authorization: `Bearer ${RECEIVER_TOKEN}` }
  let sequence = 0
  const server = createServer((req, res) => {
    readBody(req)
      .then(async (body) => {
        const id = records === undefined ? '' : String(++sequence)
        if (records !== undefined) await records.write(id, `${process.pid}|${id}|${Date.now()}|${body.length}`)
        const answer = await pool.request({ method: 'POST', path, headers, body })
        const buf = Buffer.from(await answer.body.arrayBuffer())
        if (records !== undefined) await records.delete(id)
        res.writeHead(answer.statusCode, { 'content-type': OCTET }).end(buf)
      })
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end()
        else res.destroy()
      })
  })
  announce(server, '/accounts/sender/ilp')
}

// -- ilp-connector, the reference connector, as a target

/** The connector's own address, and the receiver's prefix (every prepare's destination starts with it). */
const CONNECTOR_ADDRESS = 'test.connector'
const RECEIVER_PREFIX = 'test.receiver'

interface ConnectorApp {
  listen(): Promise<void>
}

/**
 * ilp-connector, a devDependency: required by path, because its
 * dist/index.js starts a connector from the environment when Node's ESM
 * loader imports it (module.parent unset). Undefined when not installed.
 */
function connectorModule(): { createApp: (config: object) => ConnectorApp; version: string } | undefined {
  const require = createRequire(import.meta.url)
  try {
    const createApp = (require('ilp-connector/dist/app') as { default: (config: object) => ConnectorApp }).default
    const { version } = require('ilp-connector/package.json') as { version: string }
    return { createApp, version }
  } catch {
    return undefined
  }
}

/** ilp-connector's version, or undefined when it is not installed (it is a devDependency). */
export function connectorVersion(): string | undefined {
  return connectorModule()?.version
}

/**
 * ilp-connector as deployed, with nothing that refuses the bench's load:
 * balances kept in memory (its balance middleware, unbounded), its rate limit off (its default bucket of 10,000
 * packets a minute per account would reject most of the load), one-to-one
 * rates between the same asset, the sender a child and the receiver a peer,
 * each over ilp-plugin-http, and a static route to the receiver's prefix.
 * No CCP with the receiver (sendRoutes, receiveRoutes false): it fulfills
 * every prepare, CCP's included, with a fulfillment that does not match.
 * (routeBroadcastEnabled stays on: without it the configured routes are
 * never loaded.)
 */
export function connectorConfig(receiverUrl: string, senderPort: number): object {
  const unbounded = { minimum: '-Infinity', maximum: 'Infinity' }
  return {
    env: 'test',
    ilpAddress: CONNECTOR_ADDRESS,
    backend: 'one-to-one',
    spread: 0,
    store: 'memory',
    disableMiddleware: ['rateLimit'],
    routes: [{ targetPrefix: RECEIVER_PREFIX, peerId: 'receiver' }],
    accounts: {
      sender: {
        relation: 'child',
        plugin: 'ilp-plugin-http',
        assetCode: 'USD',
        assetScale: 6,
        balance: unbounded,
        options: {
          incoming: { port: senderPort, staticToken: SENDER_TOKEN },
          // never used: the bench's sender takes no packets
          outgoing: { url: 'http://127.0.0.1:9/', staticToken: 'unused' },
        },
      },
      receiver: {
        relation: 'peer',
        plugin: 'ilp-plugin-http',
        assetCode: 'USD',
        assetScale: 6,
        balance: unbounded,
        sendRoutes: false,
        receiveRoutes: false,
        options: {
          // port 0: the plugin always listens, and nothing sends to the connector from this side
          incoming: { port: 0, staticToken: 'unused' },
          outgoing: { url: receiverUrl, staticToken: RECEIVER_TOKEN },
        },
      },
    },
  }
}

function runConnector(): void {
  const connector = connectorModule()
  if (!connector) {
    process.stderr.write('bench: ilp-connector is not installed (a devDependency); run with --no-connector\n')
    process.exit(1)
  }
  endWithParent()
  void (async () => {
    const port = await freePort()
    await connector.createApp(connectorConfig(process.env[ENV_TARGET] ?? '', port)).listen()
    // the plugin's server takes any path: this one is the farm's, so the three targets read alike
    process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}/accounts/sender/ilp` } satisfies ChildMessage)
  })().catch((err: unknown) => {
    process.stderr.write(`bench: ilp-connector did not start: ${(err as Error).stack ?? String(err)}\n`)
    process.exit(1)
  })
}

// -- starting the roles

/** Runs `role` in this process (it then lives until the bench goes away); false for no such role. */
export function runRole(role: string | undefined): boolean {
  if (role === 'receiver') runReceiver()
  else if (role === 'floor') runFloor()
  else if (role === 'redis-floor') runRedisFloor()
  else if (role === 'connector') runConnector()
  else return false
  return true
}

export interface RoleHandle {
  child: ChildProcess
  url: string
  /** The last of what it printed; empty for a role whose output goes to the bench's own stdout and stderr. */
  output: () => string
}

/**
 * Forks a role and waits for its URL; `children` gets the process at once,
 * so that it is stopped even if it never gets ready. The connector's output
 * is kept rather than shown: its logger writes to stdout, which is the
 * bench's report (--json).
 */
export async function startRole(role: RoleName, env: Record<string, string>, children: ChildProcess[]): Promise<RoleHandle> {
  const keep = role === 'connector'
  const child = fork(ROLE_ENTRY, ['--role', role], {
    env: { ...process.env, ...env },
    stdio: ['ignore', keep ? 'pipe' : 'inherit', keep ? 'pipe' : 'inherit', 'ipc'],
  })
  children.push(child)
  let tail = ''
  const onOutput = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-8000)
  }
  child.stdout?.on('data', onOutput)
  child.stderr?.on('data', onOutput)
  // ilp-connector loads its many modules first: on a busy machine that takes seconds
  const timeoutMs = keep ? 30_000 : 10_000
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${role} did not start within ${timeoutMs / 1000} s${tail ? `:\n${tail}` : ''}`)), timeoutMs)
    child.once('message', (m: ChildMessage) => {
      clearTimeout(timer)
      resolve(m.url)
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      reject(new Error(`${role} exited (${signal ?? `code ${code}`}) before it was ready${tail ? `:\n${tail}` : ''}`))
    })
  })
  child.removeAllListeners('exit')
  return { child, url, output: () => tail }
}

/** The environment that points the floor, or ilp-connector, at the receiver; and the redis floor at its Redis. */
export function floorEnv(receiverUrl: string, redisUrl?: string): Record<string, string> {
  return redisUrl === undefined ? { [ENV_TARGET]: receiverUrl } : { [ENV_TARGET]: receiverUrl, [ENV_REDIS]: redisUrl }
}
