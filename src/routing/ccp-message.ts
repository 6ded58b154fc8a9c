/**
 * Sending one CCP message to a peer, shared by the leader's two senders
 * (route updates in `ccp-broadcaster.ts`, route control in `ccp-receiver.ts`):
 * the HTTP deadline, the answer's check and the retry delay after a failure.
 */
import { deserializeIlpReject, type IlpReject, Type } from 'ilp-packet'
import { deserializeCcpResponse } from 'ilp-protocol-ccp'
import type { Logger } from 'pino'
import type { AccountConfig } from '../config/schema.js'
import type { OutgoingClient } from '../peers/outgoing.js'

/** HTTP deadline of one CCP message. */
const SEND_TIMEOUT_MS = 5_000
/** Shortest retry delay after a failed CCP message (doubling up to the broadcast interval). */
const MIN_RETRY_MS = 200

/** The wait before the next try after a failed message: doubles from MIN_RETRY_MS, never beyond the broadcast interval. */
export function retryDelay(previousMs: number, intervalMs: number): number {
  return Math.min(intervalMs, Math.max(MIN_RETRY_MS, previousMs * 2))
}

/** Sends one CCP message; resolves when the peer fulfilled it with the peer-protocol fulfillment. */
export async function sendCcpMessage(outgoing: OutgoingClient, account: AccountConfig, packet: Buffer): Promise<void> {
  // CCP always goes in sync ILP-over-HTTP, also to `outgoing.mode: async` accounts (the peer must answer it inline)
  const reply = await outgoing.send(account, packet, SEND_TIMEOUT_MS)
  if (reply[0] === Type.TYPE_ILP_FULFILL) {
    deserializeCcpResponse(reply)
    return
  }
  let reject: IlpReject | undefined
  try {
    reject = reply[0] === Type.TYPE_ILP_REJECT ? deserializeIlpReject(reply) : undefined
  } catch {
    reject = undefined
  }
  throw new Error(reject ? `rejected ${reject.code}: ${reject.message}` : 'unexpected answer')
}

/** Runs one part of a leader tick; a failure is logged and the tick goes on (the next tick tries again). */
export async function tickStep(log: Logger, what: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    log.warn({ err }, `could not ${what}`)
  }
}

/** The pinned accounts with `flag` set and an outgoing URL: those the leader sends CCP messages to. */
export function pinnedWith(accounts: Iterable<{ account: AccountConfig }>, flag: 'sendRoutes' | 'receiveRoutes'): AccountConfig[] {
  return [...accounts].map((a) => a.account).filter((a) => a[flag] && a.outgoing !== undefined)
}
