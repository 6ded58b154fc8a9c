/** ILP amounts are UInt64; balances are signed integers of any size. Both travel as decimal strings. */
export const UINT64_MAX = 18446744073709551615n

const UINT_RE = /^(0|[1-9][0-9]*)$/
const INT_RE = /^(0|-?[1-9][0-9]*)$/

/** Canonical non-negative integer decimal string ("0", "42"; not "007", "+1", "1e3"). */
export function isUIntString(s: string): boolean {
  return UINT_RE.test(s)
}

/** Canonical signed integer decimal string. */
export function isIntString(s: string): boolean {
  return INT_RE.test(s)
}

export function isUInt64String(s: string): boolean {
  return isUIntString(s) && BigInt(s) <= UINT64_MAX
}

const DECIMAL_RE = /^(0|[1-9][0-9]*)(\.[0-9]+)?$/

/** A plain decimal string: "1", "0.5", "1.08" (no sign, exponent or leading zeros). */
export function isDecimalString(s: string): boolean {
  return DECIMAL_RE.test(s)
}
