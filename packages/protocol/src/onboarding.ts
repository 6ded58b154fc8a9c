/**
 * Open sign-up and ticket redemption as farm and client both see them: the
 * account a redemption or sign-up answers with, and the proof of work.
 */
import { createHash } from 'node:crypto'

/** What a redeemed ticket or a sign-up gives the user (ilp_redeemTicket, ilp_signUp): the account and its token, shown once. */
export interface NewAccount {
  id: string
  token: string
  ilpAddress: string
  assetCode: string
  assetScale: number
}

/**
 * Proof of work for open sign-up (Mediachain's answer to spam): find a nonce
 * such that SHA-256(challenge || nonce) starts with `difficulty` zero bits.
 * Finding one takes about 2^difficulty hashes; checking it takes one.
 * The nonce is a decimal string (what the client sends as is). The farm
 * checks (verifyPow) what the client searched for (searchPow): one digest.
 */
export function leadingZeroBits(digest: Buffer): number {
  let bits = 0
  for (const byte of digest) {
    if (byte === 0) {
      bits += 8
      continue
    }
    return bits + Math.clz32(byte) - 24
  }
  return bits
}

export function powDigest(challenge: string, nonce: string): Buffer {
  return createHash('sha256').update(challenge, 'utf8').update(nonce, 'utf8').digest()
}

export function verifyPow(challenge: string, nonce: string, difficulty: number): boolean {
  return /^[0-9]{1,20}$/.test(nonce) && leadingZeroBits(powDigest(challenge, nonce)) >= difficulty
}

/** Tries nonces start, start + step, ... up to `limit` tries; the first that works, or undefined. */
export function searchPow(challenge: string, difficulty: number, start: number, step: number, limit: number): string | undefined {
  for (let i = 0, n = start; i < limit; i++, n += step) {
    const nonce = String(n)
    if (leadingZeroBits(powDigest(challenge, nonce)) >= difficulty) return nonce
  }
  return undefined
}
