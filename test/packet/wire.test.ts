import { randomBytes, randomInt } from 'node:crypto'
import { deserializeEnvelope, deserializeIlpPrepare, type IlpPrepare, serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { NotAPrepareError, parsePrepare } from '../../src/packet/steps/parse.js'
import { IlpRejection } from '../../src/packet/reject.js'

/**
 * The packet path's classification of a body (400, F01 or a Prepare) with
 * the fast reader of @ilp-farm/protocol (readPrepare) in front, against
 * ilp-packet's alone.
 * The readers themselves are tested in test/protocol/oer.test.ts.
 */

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

/** A prepare as one comparable value: toEqual walks a 32 KB Buffer element by element, a string it compares at once. */
function summary(prepare: IlpPrepare): string {
  return [prepare.amount, prepare.expiresAt.getTime(), prepare.destination, prepare.executionCondition.toString('hex'), prepare.data.toString('hex')].join(' ')
}

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
    return Number.isNaN(prepare.expiresAt.getTime()) ? 'F01 bad expiresAt' : summary(prepare)
  } catch (err) {
    return `F01 invalid packet: ${(err as Error).message}`
  }
}

function outcome(raw: Buffer): unknown {
  try {
    return summary(parsePrepare(raw))
  } catch (err) {
    if (err instanceof NotAPrepareError) return err.message.includes('type') ? `type ${raw[0]}` : 'not ILP'
    if (err instanceof IlpRejection) return `${err.code} ${err.message}`
    throw err
  }
}

describe('parsePrepare with readPrepare in front', () => {
  it('answers every body as ilp-packet alone would (fuzzed)', () => {
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
      expect(outcome(bytes)).toEqual(referenceParse(bytes))
    }
  })
})
