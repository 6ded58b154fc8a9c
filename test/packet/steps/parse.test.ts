import { serializeIlpFulfill, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { IlpRejection } from '../../../src/packet/reject.js'
import { NotAPrepareError, parsePrepare } from '../../../src/packet/steps/parse.js'

const prepare = {
  amount: '18446744073709551615',
  destination: 'test.farm.bob',
  executionCondition: Buffer.alloc(32, 7),
  expiresAt: new Date('2030-01-02T03:04:05.678Z'),
  data: Buffer.from('hello'),
}

function rejectionOf(fn: () => unknown): { code: string; message: string } {
  try {
    fn()
  } catch (err) {
    if (err instanceof IlpRejection) return { code: err.code, message: err.message }
    throw err
  }
  throw new Error('no rejection')
}

describe('parse step', () => {
  it('reads every field of a Prepare, a UInt64 amount beyond 2^53 included', () => {
    expect(parsePrepare(serializeIlpPrepare(prepare))).toEqual(prepare)
  })

  it('a body that is not an ILP packet is refused at the HTTP level (NotAPrepareError), not rejected', () => {
    expect(() => parsePrepare(Buffer.from('hello'))).toThrow(new NotAPrepareError('body is not an ILP packet'))
  })

  it('an ILP packet of another type is refused at the HTTP level, naming its type', () => {
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32), data: Buffer.alloc(0) })
    expect(() => parsePrepare(fulfill)).toThrow(new NotAPrepareError('body is an ILP packet of type 13, not a Prepare'))
  })

  it('a Prepare envelope whose contents do not parse is F01', () => {
    expect(rejectionOf(() => parsePrepare(Buffer.from([12, 3, 1, 2, 3])))).toEqual({
      code: 'F01',
      message: 'invalid packet: Tried to read 8 bytes, but only 3 bytes available',
    })
  })

  it('a Prepare whose expiry is not a timestamp is F01', () => {
    const raw = serializeIlpPrepare(prepare)
    raw.write('2030XX02030405678', 2 + 8, 'latin1') // type, length, amount: the expiry's 17 digits follow
    expect(rejectionOf(() => parsePrepare(raw))).toEqual({ code: 'F01', message: 'invalid packet: invalid date' })
  })
})
