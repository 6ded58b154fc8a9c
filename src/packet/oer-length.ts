/**
 * The packet path's fast readers (steps/parse.ts, steps/forward.ts) read OER
 * length prefixes exactly as oer-utils does (canonical only), without
 * allocating: `readLengthPrefix` returns the length, or -1 when the prefix is
 * malformed or runs past `end`, and sets `contentAt` (a live binding) to
 * where the content starts. Anything unusual falls back to ilp-packet.
 */
export let contentAt = 0

export function readLengthPrefix(buf: Buffer, at: number, end: number): number {
  if (at >= end) return -1
  const first = buf[at]!
  if (first < 0x80) {
    contentAt = at + 1
    return first
  }
  const bytes = first & 0x7f
  if (bytes === 0 || bytes > 6 || at + 1 + bytes > end) return -1
  let value = 0
  for (let i = 1; i <= bytes; i++) value = value * 256 + buf[at + i]!
  if (value < Math.max(128, 2 ** ((bytes - 1) * 8))) return -1
  contentAt = at + 1 + bytes
  return value
}
