import { randomUUID } from 'node:crypto'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { deserializeIlpPrepare, type IlpPrepare } from 'ilp-packet'
import { request } from 'undici'
import { readBody } from './peer.js'

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections()
  await new Promise<void>((resolve) => server.close(() => resolve()))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls until the check passes (or throws its last failure after timeoutMs). */
export async function eventually<T>(check: () => T | Promise<T>, timeoutMs = 10_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() > deadline) throw err
      await sleep(everyMs)
    }
  }
}

/** What the callback server does with one POST: answer a status, or drop the connection without an answer. */
/** Retries `check` until it passes, for at most `ms`; returns how long it took. */
export async function within(ms: number, check: () => Promise<void>): Promise<number> {
  const start = Date.now()
  for (;;) {
    try {
      await check()
      return Date.now() - start
    } catch (err) {
      if (Date.now() - start > ms) throw err
      await new Promise((r) => setTimeout(r, 20))
    }
  }
}

export type CallbackAnswer = number | 'destroy'

export interface CallbackHit {
  at: number
  headers: IncomingHttpHeaders
  body: Buffer
  answered: CallbackAnswer
}

export interface CallbackServer {
  /** Base URL; a test picks any path under it as Callback-Url. */
  url: string
  hits: CallbackHit[]
  close(): Promise<void>
}

/** The caller's side of inbound async ILP-over-HTTP: records every callback the farm POSTs. */
export async function startCallbackServer(answer: (hitNumber: number, hit: Omit<CallbackHit, 'answered'>) => CallbackAnswer): Promise<CallbackServer> {
  const hits: CallbackHit[] = []
  const server = createServer(async (req, res) => {
    const body = await readBody(req)
    const hit = { at: Date.now(), headers: req.headers, body }
    const answered = answer(hits.length + 1, hit)
    hits.push({ ...hit, answered })
    if (answered === 'destroy') req.socket.destroy()
    else res.writeHead(answered).end()
  })
  const url = await listen(server)
  return { url, hits, close: () => closeServer(server) }
}

/** What an async next hop does with one prepare. */
export type AsyncPeerAction =
  /** 202, then POST this reply to the Callback-Url after delayMs (copies > 1: the same callback again). */
  | { reply: Buffer; delayMs?: number; copies?: number }
  /** 202 and never call back. */
  | 'silent'
  /** Answer this status and nothing else. */
  | { status: number }

export interface AsyncPeerPrepare {
  prepare: IlpPrepare
  headers: IncomingHttpHeaders
  /** The farm's status answer to each callback this peer POSTed for the prepare. */
  callbackStatuses: number[]
}

export interface AsyncPeer {
  url: string
  received: AsyncPeerPrepare[]
  close(): Promise<void>
}

/** POSTs a reply to a farm's callback URL as a next hop would. */
export async function postCallback(url: string, requestId: string, reply: Buffer, token: string | null): Promise<number> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'request-id': requestId }
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await request(url, { method: 'POST', headers, body: reply })
  await res.body.dump()
  return res.statusCode
}

/**
 * A next hop speaking async ILP-over-HTTP: answers prepares with 202 and
 * later POSTs the reply to the Callback-Url with the Request-Id, authenticated
 * with `token` (its incoming.token at the farm).
 */
export async function startAsyncPeer(token: string, handle: (prepare: IlpPrepare) => AsyncPeerAction): Promise<AsyncPeer> {
  const received: AsyncPeerPrepare[] = []
  const timers = new Set<NodeJS.Timeout>()
  const server = createServer(async (req, res) => {
    const prepare = deserializeIlpPrepare(await readBody(req))
    const entry: AsyncPeerPrepare = { prepare, headers: req.headers, callbackStatuses: [] }
    received.push(entry)
    const action = handle(prepare)
    if (typeof action === 'object' && 'status' in action) {
      res.writeHead(action.status).end()
      return
    }
    res.writeHead(202).end()
    if (action === 'silent') return
    const callbackUrl = String(req.headers['callback-url'])
    const requestId = String(req.headers['request-id'])
    const timer = setTimeout(async () => {
      timers.delete(timer)
      for (let i = 0; i < (action.copies ?? 1); i++) {
        entry.callbackStatuses.push(await postCallback(callbackUrl, requestId, action.reply, token).catch(() => -1))
      }
    }, action.delayMs ?? 0)
    timers.add(timer)
  })
  const url = await listen(server)
  return {
    url: `${url}/ilp`,
    received,
    async close() {
      for (const t of timers) clearTimeout(t)
      await closeServer(server)
    },
  }
}

export const newRequestId = (): string => randomUUID()

/** Headers of an async prepare to the farm. */
export function asyncHeaders(callbackUrl: string, requestId: string): Record<string, string> {
  return { prefer: 'respond-async', 'callback-url': callbackUrl, 'request-id': requestId }
}
