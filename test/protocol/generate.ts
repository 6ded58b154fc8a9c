import { randomBytes, randomInt } from 'node:crypto'
import { type IlpPrepare, serializeIlpPrepare } from 'ilp-packet'

/**
 * Generated packets for the fast path's tests (test/protocol/oer.test.ts)
 * and the parse step's (test/packet/wire.test.ts): prepares of every size
 * class of length prefix, and those bodies cut, extended or mutated.
 */

export function randomUInt64(): string {
  const digits = randomInt(1, 21)
  return (BigInt(`0x${randomBytes(8).toString('hex')}`) % 10n ** BigInt(digits)).toString()
}

function randomAddress(length: number): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789_~-'
  let s = 'g.'
  while (s.length < length) s += s.length % 9 === 0 && s.length + 1 < length && !s.endsWith('.') ? '.' : chars[randomInt(0, chars.length)]
  return s.endsWith('.') ? `${s}x` : s
}

/** Data and address lengths either side of the one-byte (127) and two-byte (255) length prefixes, up to the maxima. */
export const DATA_LENGTHS = [0, 1, 16, 127, 128, 255, 256, 1000, 32767]
const ADDRESS_LENGTHS = [3, 20, 126, 127, 128, 200, 1023]

export function randomPrepare(): IlpPrepare {
  return {
    amount: randomUInt64(),
    expiresAt: new Date(Date.now() + randomInt(-1e9, 1e9)),
    executionCondition: randomBytes(32),
    destination: randomAddress(ADDRESS_LENGTHS[randomInt(0, ADDRESS_LENGTHS.length)]!),
    data: randomBytes(DATA_LENGTHS[randomInt(0, DATA_LENGTHS.length)]!),
  }
}

/**
 * The i-th body of a run: by i % 6 a prepare as serialized, cut short, with
 * trailing bytes, with one or two bytes of its first 90 changed, or random
 * bytes after a Prepare's type.
 */
export function mutatedPrepare(i: number): Buffer {
  const packet = serializeIlpPrepare(randomPrepare())
  switch (i % 6) {
    case 1:
      return packet.subarray(0, randomInt(0, Math.min(packet.length, 120)))
    case 2:
      return Buffer.concat([packet, randomBytes(randomInt(1, 4))])
    case 3:
    case 4: {
      const bytes = Buffer.from(packet)
      for (let n = randomInt(1, 3); n > 0; n--) bytes[randomInt(0, Math.min(bytes.length, 90))] = randomInt(0, 256)
      return bytes
    }
    case 5:
      return Buffer.concat([Buffer.from([12]), randomBytes(randomInt(0, 100))])
    default:
      return packet
  }
}
