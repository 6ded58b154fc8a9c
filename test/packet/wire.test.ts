import { randomBytes } from 'node:crypto'
import { deserializeEnvelope, deserializeIlpPrepare, type IlpPrepare, serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { NotAPrepareError, parsePrepare } from '../../src/packet/steps/parse.js'
import { mutatedPrepare, randomPrepare } from '../protocol/generate.js'
import { IlpRejection } from '../../src/packet/reject.js'

/**
 * The packet path's classification of a body (400, F01 or a Prepare) with
 * the fast reader of @ilp-farm/protocol (readPrepare) in front, against
 * ilp-packet's alone.
 * The readers themselves are tested in test/protocol/oer.test.ts.
 */

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
      const bytes = mutatedPrepare(i)
      expect(outcome(bytes)).toEqual(referenceParse(bytes))
    }
  })
})
