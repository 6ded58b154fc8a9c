import { createHash, randomBytes, randomInt } from 'node:crypto'
import { deserializeIlpPacket, type IlpPrepare, serializeIlpFulfill, serializeIlpPrepare, Type as IlpPacketType } from 'ilp-packet'
import { Agent, request } from 'undici'
import { startTestPeer, type TestPeer } from './peer.js'

/**
 * Sustained load of unique packets for the crash and outage tests, and a
 * receiver that fulfills them and remembers every fulfillment it gave.
 */

export interface SentPacket {
  /** The farm's hotSet id of the packet: SHA-256 of its bytes (no Request-Id is sent). */
  packetId: string
  conditionHex: string
  amount: bigint
  sentAt: number
  /** Local time the answer arrived (or the request failed). */
  doneAt: number
  outcome: 'fulfill' | 'reject' | 'error'
  /** ILP code of a reject; the error message of a failed request. */
  detail: string
}

/** A next hop that fulfills every packet it knows the fulfillment of, after a small random delay. */
export interface Receiver {
  readonly peer: TestPeer
  readonly url: string
  /** condition (hex) → amount, for every fulfill it answered with. */
  readonly fulfilled: Map<string, bigint>
  close(): Promise<void>
}

const fulfillments = new Map<string, Buffer>()
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

export async function startReceiver(maxDelayMs = 50): Promise<Receiver> {
  const fulfilled = new Map<string, bigint>()
  const peer = await startTestPeer(async (prepare) => {
    await sleep(randomInt(0, maxDelayMs + 1))
    const conditionHex = prepare.executionCondition.toString('hex')
    const fulfillment = fulfillments.get(conditionHex)
    if (!fulfillment) return { status: 500 }
    fulfilled.set(conditionHex, BigInt(prepare.amount))
    return serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
  })
  return { peer, url: peer.url, fulfilled, close: () => peer.close() }
}

export interface LoadOptions {
  farmUrl: string
  account: string
  token: string
  destination: string
  concurrency: number
  durationMs: number
  /** Expiry of each prepare from the moment it is sent. */
  expiresInMs: number
  /** Gap after a failed request, so a farm that refuses connections is not spun against. */
  pauseAfterErrorMs?: number
  /** Gap after a reject (default none). */
  pauseAfterRejectMs?: number
  /** A request that has not answered after this long counts as an error (the test asserts there are none). */
  requestTimeoutMs?: number
  /** Stops the senders early: each finishes the packet it is sending, then sends no more. */
  signal?: AbortSignal
}

/** `concurrency` loops, each sending one unique prepare after another until durationMs has passed (or `signal` aborts). */
export async function runLoad(opts: LoadOptions): Promise<SentPacket[]> {
  const sent: SentPacket[] = []
  const agent = new Agent({ keepAliveTimeout: 10_000, connections: opts.concurrency })
  const deadline = Date.now() + opts.durationMs
  const loop = async () => {
    while (Date.now() < deadline && !opts.signal?.aborted) {
      const fulfillment = randomBytes(32)
      const condition = createHash('sha256').update(fulfillment).digest()
      fulfillments.set(condition.toString('hex'), fulfillment)
      const amount = BigInt(randomInt(1, 1000))
      const sentAt = Date.now()
      const prepare: IlpPrepare = {
        destination: opts.destination,
        amount: amount.toString(),
        executionCondition: condition,
        expiresAt: new Date(sentAt + opts.expiresInMs),
        data: Buffer.alloc(0),
      }
      const raw = serializeIlpPrepare(prepare)
      const packet: SentPacket = {
        packetId: createHash('sha256').update(raw).digest('base64url'),
        conditionHex: condition.toString('hex'),
        amount,
        sentAt,
        doneAt: 0,
        outcome: 'error',
        detail: '',
      }
      sent.push(packet)
      try {
        const res = await request(`${opts.farmUrl}/accounts/${opts.account}/ilp`, {
          method: 'POST',
          dispatcher: agent,
          headers: { 'content-type': 'application/octet-stream', authorization: `Bearer ${opts.token}` },
          body: raw,
          headersTimeout: opts.requestTimeoutMs ?? 15_000,
          bodyTimeout: opts.requestTimeoutMs ?? 15_000,
        })
        const body = Buffer.from(await res.body.arrayBuffer())
        packet.doneAt = Date.now()
        if (res.statusCode !== 200) {
          packet.detail = `HTTP ${res.statusCode}`
        } else {
          const reply = deserializeIlpPacket(body)
          if (reply.type === IlpPacketType.TYPE_ILP_FULFILL) packet.outcome = 'fulfill'
          else if (reply.type === IlpPacketType.TYPE_ILP_REJECT) {
            packet.outcome = 'reject'
            packet.detail = reply.data.code
          }
        }
      } catch (err) {
        packet.doneAt = Date.now()
        packet.detail = (err as Error).message
      }
      if (packet.outcome === 'error') await sleep(opts.pauseAfterErrorMs ?? 50)
      else if (packet.outcome === 'reject' && opts.pauseAfterRejectMs) await sleep(opts.pauseAfterRejectMs)
    }
  }
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, loop))
  } finally {
    await agent.close()
  }
  return sent
}

/** "fulfill x120, reject T00 x30, error x4 (other side closed x4)" */
export function summarize(sent: SentPacket[]): string {
  const counts = new Map<string, number>()
  for (const p of sent) {
    const key = p.outcome === 'fulfill' ? 'fulfill' : p.outcome === 'reject' ? `reject ${p.detail}` : `error (${p.detail.slice(0, 40)})`
    counts.set(key, (counts.get(key) ?? 0) + 1)
  }
  return [...counts].map(([k, v]) => `${k} x${v}`).join(', ')
}

export const sum = (amounts: Iterable<bigint>): bigint => {
  let total = 0n
  for (const a of amounts) total += a
  return total
}
