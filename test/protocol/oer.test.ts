import { randomBytes, randomInt } from 'node:crypto'
import {
  contentAt,
  contentOffset,
  fulfillmentOf,
  interledgerTime,
  interledgerTimeToDate,
  lengthPrefixAt,
  lengthPrefixSize,
  outgoingPrepare,
  readLengthPrefix,
  readPrepare,
} from '@ilp-farm/protocol'
import { deserializeIlpFulfill, deserializeIlpPrepare, deserializeIlpReject, serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { DATA_LENGTHS, mutatedPrepare, randomPrepare, randomUInt64 } from './generate.js'
import { VECTORS } from './vectors.js'

/** The OER fast path of @ilp-farm/protocol: the reference vectors, then against ilp-packet on generated packets. */

/** The vector with its envelope's length prefix (one byte) written in the long form: not canonical. */
function longFormEnvelope(packet: Buffer): Buffer {
  return Buffer.concat([packet.subarray(0, 1), Buffer.from([0x81]), packet.subarray(1)])
}

describe('the reference vectors', () => {
  it('readPrepare reads the Prepare vector as ilp-packet does', () => {
    const prepare = readPrepare(VECTORS.prepare)!
    expect(prepare.amount).toBe('107')
    expect(prepare.expiresAt.toISOString()).toBe('2017-12-23T01:21:40.549Z')
    expect(prepare.destination).toBe('example.alice')
    expect(prepare.data.length).toBe(32)
    expect(prepare.executionCondition.toString('hex')).toBe('74e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de1')
    expect(prepare).toEqual(deserializeIlpPrepare(VECTORS.prepare))
  })

  it('readPrepare reads the ILDCP request: amount 0, peer.config, the zero-fulfillment condition, no data', () => {
    const prepare = readPrepare(VECTORS.ildcpRequest)!
    expect(prepare.amount).toBe('0')
    expect(prepare.destination).toBe('peer.config')
    expect(prepare.expiresAt.toISOString()).toBe('2015-06-16T00:01:00.000Z')
    expect(prepare.executionCondition.toString('hex')).toBe('66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925')
    expect(prepare.data.length).toBe(0)
  })

  it('outgoingPrepare writes the vector back byte for byte, and with a new amount and expiry as ilp-packet does', () => {
    const prepare = readPrepare(VECTORS.prepare)!
    expect(outgoingPrepare(VECTORS.prepare, prepare, prepare.amount, prepare.expiresAt).equals(VECTORS.prepare)).toBe(true)
    const expiresAt = new Date('2030-01-02T03:04:05.678Z')
    const out = outgoingPrepare(VECTORS.prepare, prepare, '18446744073709551615', expiresAt)
    expect(out.equals(serializeIlpPrepare({ ...prepare, amount: '18446744073709551615', expiresAt }))).toBe(true)
    expect(out.subarray(2, 10).toString('hex')).toBe('ffffffffffffffff')
    expect(out.subarray(10, 27).toString('ascii')).toBe('20300102030405678')
  })

  it('fulfillmentOf finds the fulfillment of the Fulfill vector and of the ILDCP response (32 zero bytes)', () => {
    expect(fulfillmentOf(VECTORS.fulfill)!.toString('hex')).toBe(deserializeIlpFulfill(VECTORS.fulfill).fulfillment.toString('hex'))
    expect(fulfillmentOf(VECTORS.fulfill)!.toString('hex')).toBe('c3866b48749ccf113b2e15c25d2407fbfc14476fe7296bb1bf1bcd9e6e416650')
    expect(fulfillmentOf(VECTORS.ildcpResponse)!.equals(Buffer.alloc(32))).toBe(true)
  })

  it('contentOffset points at the first field: the code of each Reject vector, the amount of the Prepare', () => {
    for (const [vector, code] of [
      [VECTORS.reject, 'F01'],
      [VECTORS.f08Reject, 'F08'],
    ] as const) {
      const at = contentOffset(vector)
      expect(vector.toString('ascii', at, at + 3)).toBe(code)
      expect(deserializeIlpReject(vector).code).toBe(code)
    }
    expect(VECTORS.prepare.readBigUInt64BE(contentOffset(VECTORS.prepare))).toBe(107n)
    expect(contentOffset(Buffer.from([14]))).toBe(1)
    expect(contentOffset(Buffer.from([12, 0x82, 1, 0]))).toBe(4)
  })

  it('refuses what ilp-packet refuses: other types, cut short, a long-form length, a bad address or time', () => {
    expect(readPrepare(VECTORS.fulfill)).toBeUndefined()
    expect(fulfillmentOf(VECTORS.prepare)).toBeUndefined()
    expect(fulfillmentOf(VECTORS.reject)).toBeUndefined()
    for (let cut = 0; cut < VECTORS.prepare.length; cut += 7) expect(readPrepare(VECTORS.prepare.subarray(0, cut))).toBeUndefined()
    for (let cut = 0; cut < VECTORS.fulfill.length; cut += 5) expect(fulfillmentOf(VECTORS.fulfill.subarray(0, cut))).toBeUndefined()

    const longPrepare = longFormEnvelope(VECTORS.prepare)
    expect(readPrepare(longPrepare)).toBeUndefined()
    expect(() => deserializeIlpPrepare(longPrepare)).toThrow()
    const longFulfill = longFormEnvelope(VECTORS.fulfill)
    expect(fulfillmentOf(longFulfill)).toBeUndefined()
    expect(() => deserializeIlpFulfill(longFulfill)).toThrow()

    const badAddress = Buffer.from(VECTORS.prepare)
    badAddress.write('E', VECTORS.prepare.indexOf('example.alice'), 'ascii') // schemes are lower case
    expect(readPrepare(badAddress)).toBeUndefined()
    expect(() => deserializeIlpPrepare(badAddress)).toThrow()

    const badTime = Buffer.from(VECTORS.prepare)
    badTime.write('20x7', 10, 'ascii')
    expect(readPrepare(badTime)).toBeUndefined()
  })
})

describe('length prefixes', () => {
  it('reads canonical prefixes and sets contentAt after them', () => {
    expect(readLengthPrefix(Buffer.from([0x05]), 0, 1)).toBe(5)
    expect(contentAt).toBe(1)
    expect(readLengthPrefix(Buffer.from([0, 0x81, 0x80]), 1, 3)).toBe(128)
    expect(contentAt).toBe(3)
    expect(readLengthPrefix(Buffer.from([0x82, 0x01, 0x00]), 0, 3)).toBe(256)
    expect(contentAt).toBe(3)
  })

  it('refuses long forms of short lengths, leading zeros, an empty long form, and prefixes past the end', () => {
    expect(readLengthPrefix(Buffer.from([0x81, 0x7f]), 0, 2)).toBe(-1)
    expect(readLengthPrefix(Buffer.from([0x82, 0x00, 0xff]), 0, 3)).toBe(-1)
    expect(readLengthPrefix(Buffer.from([0x80]), 0, 1)).toBe(-1)
    expect(readLengthPrefix(Buffer.from([0x82, 0x01, 0x00]), 0, 2)).toBe(-1)
    expect(readLengthPrefix(Buffer.from([0x05]), 1, 1)).toBe(-1)
  })

  it('sizes and recognises canonical prefixes', () => {
    expect([0, 127, 128, 255, 256, 65535, 65536].map(lengthPrefixSize)).toEqual([1, 1, 2, 2, 3, 3, 4])
    expect(lengthPrefixAt(Buffer.from([0x7f]), 0, 127)).toBe(true)
    expect(lengthPrefixAt(Buffer.from([0x81, 0x80]), 0, 128)).toBe(true)
    expect(lengthPrefixAt(Buffer.from([0x82, 0x00, 0x80]), 0, 128)).toBe(false)
    expect(lengthPrefixAt(Buffer.from([0x82, 0x01, 0x00]), 0, 256)).toBe(true)
    expect(lengthPrefixAt(Buffer.from([0x82, 0x01, 0x01]), 0, 256)).toBe(false)
  })
})

describe('Interledger timestamps', () => {
  it('writes and reads YYYYMMDDHHmmssSSS in UTC as ilp-packet does', () => {
    const date = new Date('2017-12-23T01:21:40.549Z')
    expect(interledgerTime(date)).toBe('20171223012140549')
    expect(interledgerTimeToDate('20171223012140549')).toEqual(date)
    expect(interledgerTime(new Date('2030-01-01T00:00:00.000Z'))).toBe('20300101000000000')
    // years ilp-packet cannot write
    expect(interledgerTime(new Date('+010000-01-01T00:00:00.000Z'))).toBe('')
    expect(interledgerTimeToDate('2017122301214054x')).toBeUndefined()
  })
})

describe('against ilp-packet, generated packets', () => {
  it('outgoingPrepare gives exactly the bytes of serializeIlpPrepare with the new amount and expiry', () => {
    for (let i = 0; i < 500; i++) {
      const incoming = randomPrepare()
      const raw = serializeIlpPrepare(incoming)
      const prepare = deserializeIlpPrepare(raw)
      const amount = i % 3 === 0 ? prepare.amount : randomUInt64()
      const expiresAt = new Date(Date.now() + randomInt(0, 1e8))
      const out = outgoingPrepare(raw, prepare, amount, expiresAt)
      expect(out.equals(serializeIlpPrepare({ ...prepare, amount, expiresAt }))).toBe(true)
      // the incoming bytes are left alone
      expect(raw.equals(serializeIlpPrepare(incoming))).toBe(true)
    }
  })

  it('outgoingPrepare serializes again what is not exactly canonical: trailing bytes, a non-ASCII destination byte', () => {
    const incoming = randomPrepare()
    const raw = serializeIlpPrepare(incoming)
    const expiresAt = new Date(Date.now() + 5000)
    const trailing = Buffer.concat([raw, Buffer.from([1, 2, 3])])
    const fromTrailing = deserializeIlpPrepare(trailing)
    expect(outgoingPrepare(trailing, fromTrailing, '7', expiresAt).equals(serializeIlpPrepare({ ...fromTrailing, amount: '7', expiresAt }))).toBe(true)

    const ascii = serializeIlpPrepare({ ...incoming, destination: 'g.abc', data: Buffer.alloc(0) })
    const highBit = Buffer.from(ascii)
    highBit[highBit.length - 2] = 'c'.charCodeAt(0) | 0x80 // still decodes as 'c' (ASCII decoding drops the high bit)
    const fromHighBit = deserializeIlpPrepare(highBit)
    expect(fromHighBit.destination).toBe('g.abc')
    const out = outgoingPrepare(highBit, fromHighBit, '7', expiresAt)
    expect(out.equals(serializeIlpPrepare({ ...fromHighBit, amount: '7', expiresAt }))).toBe(true)
    expect(deserializeIlpPrepare(out).destination).toBe('g.abc')
  })

  it('readPrepare reads what deserializeIlpPrepare reads, and nothing it refuses (mutated)', () => {
    let read = 0
    for (let i = 0; i < 3000; i++) {
      const bytes = mutatedPrepare(i)
      const fast = readPrepare(bytes)
      if (fast === undefined) continue
      read++
      const slow = deserializeIlpPrepare(bytes)
      // field by field: toEqual walks a 32 KB Buffer element by element
      expect([fast.amount, fast.expiresAt.getTime(), fast.destination]).toEqual([slow.amount, slow.expiresAt.getTime(), slow.destination])
      expect(fast.executionCondition.equals(slow.executionCondition) && fast.data.equals(slow.data)).toBe(true)
    }
    // every unmutated packet (and those with trailing bytes) is read by the fast path
    expect(read).toBeGreaterThanOrEqual(1000)
  })

  it('fulfillmentOf accepts exactly what deserializeIlpFulfill accepts, and finds the same fulfillment', () => {
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
