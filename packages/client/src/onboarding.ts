import type { NewAccount } from '@ilp-farm/protocol'
import { solvePow } from './pow-solver.js'
import { FarmRpc } from './rpc.js'

export type { NewAccount }

function asNewAccount(value: unknown): NewAccount {
  const v = value as Partial<NewAccount> | null
  if (!v || typeof v.id !== 'string' || typeof v.token !== 'string' || typeof v.ilpAddress !== 'string') {
    throw new Error('the farm answered without an account')
  }
  return v as NewAccount
}

/** Redeems an invitation ticket the operator gave (JSON-RPC ilp_redeemTicket, no token needed). */
export async function redeemTicket(rpcUrl: string, ticket: string, opts: { id?: string } = {}): Promise<NewAccount> {
  const rpc = new FarmRpc(rpcUrl, undefined)
  try {
    return asNewAccount(await rpc.call('ilp_redeemTicket', { ticket, ...(opts.id ? { id: opts.id } : {}) }))
  } finally {
    await rpc.close()
  }
}

/**
 * Open sign-up: gets a challenge, solves the proof of work on worker threads
 * (the caller's event loop stays free), and signs up with it.
 */
export async function signUp(
  rpcUrl: string,
  opts: { id?: string; threads?: number; onChallenge?: (c: { difficulty: number; expiresAt: string }) => void } = {},
): Promise<NewAccount> {
  const rpc = new FarmRpc(rpcUrl, undefined)
  try {
    const { challenge, difficulty, expiresAt } = (await rpc.call('ilp_getSignupChallenge')) as { challenge: string; difficulty: number; expiresAt: string }
    opts.onChallenge?.({ difficulty, expiresAt })
    const nonce = await solvePow(challenge, difficulty, opts.threads === undefined ? {} : { threads: opts.threads })
    return asNewAccount(await rpc.call('ilp_signUp', { challenge, nonce, ...(opts.id ? { id: opts.id } : {}) }))
  } finally {
    await rpc.close()
  }
}
