import { readFileSync } from 'node:fs'
import type { AccountConfig } from '../config/schema.js'

/** How long a token read from a file is used before the file is read again (a rotated token takes effect). */
const FILE_TOKEN_TTL_MS = 60_000

const fromFiles = new Map<string, { token: string | undefined; readAt: number }>()

/**
 * The bearer token the farm sends to an account: `outgoing.token` (kept in
 * Redis with the account), or read where the worker runs, never stored:
 * the environment variable `outgoing.tokenEnv`, or the first line of the file
 * `outgoing.tokenFile` (read again after a minute). Undefined when there is
 * none, or the variable or file is missing (the next hop then refuses the
 * call, and the packet gets T01).
 */
export function outgoingToken(account: Pick<AccountConfig, 'outgoing'>): string | undefined {
  const outgoing = account.outgoing
  if (!outgoing) return undefined
  if (outgoing.token !== undefined) return outgoing.token
  if (outgoing.tokenEnv !== undefined) return process.env[outgoing.tokenEnv] || undefined
  if (outgoing.tokenFile === undefined) return undefined
  const cached = fromFiles.get(outgoing.tokenFile)
  if (cached && Date.now() - cached.readAt < FILE_TOKEN_TTL_MS) return cached.token
  let token: string | undefined
  try {
    token = readFileSync(outgoing.tokenFile, 'utf8').split(/\r?\n/, 1)[0]?.trim() || undefined
  } catch {
    token = undefined
  }
  fromFiles.set(outgoing.tokenFile, { token, readAt: Date.now() })
  return token
}
