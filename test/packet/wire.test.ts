import { randomBytes, randomInt } from 'node:crypto'
import { deserializeEnvelope, deserializeIlpFulfill, deserializeIlpPrepare, serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { fulfillmentOf, outgoingPrepare } from '../../src/packet/steps/forward.js'
import { NotAPrepareError, parsePrepare, readPrepare } from '../../src/packet/steps/parse.js'
import { IlpRejection } from '../../src/packet/reject.js'

/** The packet path's own byte handling, against ilp-packet's. */

function randomUInt64(): string {
  const digits = randomInt(1, 21)
  return (BigInt(`0x${randomBytes(8).toString('hex')}`) % 10n ** BigInt(digits)).toString()
}

function randomAddress(length: number): string {
  const chars = 'abcdefghijklmnopqrstuvwxyz0123456789_~-'
  let s = 'g.'
  while (s.length < length) s += s.length % 9 === 0 && s.length + 1 < length && !s.endsWith('.') ? '.' : chars[randomInt(0, chars.length)]
  return s.endsWith('.') ? `${s}x` : s
}

const DATA_LENGTHS = [0, 1, 16, 127, 128, 255, 256, 1000, 32767]
const ADDRESS_LENGTHS = [3, 20, 126, 127, 128, 200, 1023]

function randomPrepare() {
  return {
    amount: randomUInt64(),
    expiresAt: new Date(Date.now() + randomInt(-1e9, 1e9)),
    executionCondition: randomBytes(32),
    destination: randomAddress(ADDRESS_LENGTHS[randomInt(0, ADDRESS_LENGTHS.length)]!),
    data: randomBytes(DATA_LENGTHS[randomInt(0, DATA_LENGTHS.length)]!),
  }
}

describe('outgoingPrepare', () => {
  it('gives exactly the bytes of serializeIlpPrepare with the new amount and expiry', () => {
    for (let i = 0; i < 500; i++) {
      const incoming = randomPrepare()
      const raw = serializeIlpPrepare(incoming)
      const prepare = parsePrepare(raw)
      const amount = i % 3 === 0 ? prepare.amount : randomUInt64()
      const expiresAt = new Date(Date.now() + randomInt(0, 1e8))
      const out = outgoingPrepare(raw, prepare, amount, expiresAt)
      expect(out.equals(serializeIlpPrepare({ ...prepare, amount, expiresAt }))).toBe(true)
      // the incoming bytes are left alone
      expect(raw.equals(serializeIlpPrepare(incoming))).toBe(true)
    }
  })

  it('serializes again what is not exactly canonical: trailing bytes, a non-ASCII destination byte', () => {
    const incoming = randomPrepare()
    const raw = serializeIlpPrepare(incoming)
    const expiresAt = new Date(Date.now() + 5000)
    const trailing = Buffer.concat([raw, Buffer.from([1, 2, 3])])
    const fromTrailing = parsePrepare(trailing)
    expect(outgoingPrepare(trailing, fromTrailing, '7', expiresAt).equals(serializeIlpPrepare({ ...fromTrailing, amount: '7', expiresAt }))).toBe(true)

    const ascii = serializeIlpPrepare({ ...incoming, destination: 'g.abc', data: Buffer.alloc(0) })
    const highBit = Buffer.from(ascii)
    highBit[highBit.length - 2] = 'c'.charCodeAt(0) | 0x80 // still decodes as 'c' (ASCII decoding drops the high bit)
    const fromHighBit = parsePrepare(highBit)
    expect(fromHighBit.destination).toBe('g.abc')
    const out = outgoingPrepare(highBit, fromHighBit, '7', expiresAt)
    expect(out.equals(serializeIlpPrepare({ ...fromHighBit, amount: '7', expiresAt }))).toBe(true)
    expect(deserializeIlpPrepare(out).destination).toBe('g.abc')
  })
})

describe('parsePrepare', () => {
  it('classifies bodies as before: not ILP or not a Prepare → NotAPrepareError, a bad Prepare → F01', () => {
    const good = serializeIlpPrepare(randomPrepare())
    expect(parsePrepare(good)).toEqual(deserializeIlpPrepare(good))
    expect(() => parsePrepare(Buffer.from([12]))).toThrow(NotAPrepareError)
    expect(() => parsePrepare(Buffer.alloc(0))).toThrow(NotAPrepareError)
    expect(() => parsePrepare(serializeIlpFulfill({ fulfillment: randomBytes(32), data: Buffer.alloc(0) }))).toThrow(NotAPrepareError)
    // a Prepare envelope with contents cut short
    const short = Buffer.from([12, 3, 0, 0, 0])
    expect(() => parsePrepare(short)).toThrow(IlpRejection)
  })
})

/** parsePrepare as it was: ilp-packet only (envelope first, then the Prepare). */
function referenceParse(raw: Buffer): unknown {
  let type: number
  try {
    type = deserializeEnvelope(raw).type
  } catch {
    return 'not ILP'
  }
  if (type !== 12) return `type ${type}`
  try {
    const prepare = deserializeIlpPrepare(raw)
    return Number.isNaN(prepare.expiresAt.getTime()) ? 'F01 bad expiresAt' : prepare
  } catch (err) {
    return `F01 invalid packet: ${(err as Error).message}`
  }
}

function outcome(raw: Buffer): unknown {
  try {
    return parsePrepare(raw)
  } catch (err) {
    if (err instanceof NotAPrepareError) return err.message.includes('type') ? `type ${raw[0]}` : 'not ILP'
    if (err instanceof IlpRejection) return `${err.code} ${err.message}`
    throw err
  }
}

describe('readPrepare', () => {
  it('reads what ilp-packet reads, and parsePrepare answers every body as before (fuzzed)', () => {
    for (let i = 0; i < 3000; i++) {
      const packet = serializeIlpPrepare(randomPrepare())
      let bytes: Buffer = packet
      switch (i % 6) {
        case 1:
          bytes = packet.subarray(0, randomInt(0, Math.min(packet.length, 120)))
          break
        case 2:
          bytes = Buffer.concat([packet, randomBytes(randomInt(1, 4))])
          break
        case 3:
        case 4: {
          bytes = Buffer.from(packet)
          for (let n = randomInt(1, 3); n > 0; n--) bytes[randomInt(0, Math.min(bytes.length, 90))] = randomInt(0, 256)
          break
        }
        case 5:
          bytes = Buffer.concat([Buffer.from([12]), randomBytes(randomInt(0, 100))])
          break
      }
      const fast = readPrepare(bytes)
      if (fast !== undefined) expect(fast).toEqual(deserializeIlpPrepare(bytes))
      expect(outcome(bytes)).toEqual(referenceParse(bytes))
    }
  })
})

describe('fulfillmentOf', () => {
  it('accepts exactly what deserializeIlpFulfill accepts, and finds the same fulfillment', () => {
    for (let i = 0; i < 2000; i++) {
      const packet = serializeIlpFulfill({ fulfillment: randomBytes(32), data: randomBytes(DATA_LENGTHS[randomInt(0, 6)]!) })
      let bytes = packet
      switch (i % 5) {
        case 1: // cut short
          bytes = packet.subarray(0, randomInt(0, packet.length))
          break
        case 2: // trailing bytes
          bytes = Buffer.concat([packet, randomBytes(randomInt(1, 5))])
          break
        case 3: {
          // one random byte changed
          bytes = Buffer.from(packet)
          bytes[randomInt(0, Math.min(bytes.length, 40))] = randomInt(0, 256)
          break
        }
        case 4: // random bytes after the type
          bytes = Buffer.concat([Buffer.from([13]), randomBytes(randomInt(0, 80))])
          break
      }
      let expected: Buffer | undefined
      try {
        expected = deserializeIlpFulfill(bytes).fulfillment
      } catch {
        expected = undefined
      }
      const actual = fulfillmentOf(bytes)
      expect(actual === undefined ? undefined : Buffer.from(actual)).toEqual(expected === undefined ? undefined : Buffer.from(expected))
    }
  })
})
