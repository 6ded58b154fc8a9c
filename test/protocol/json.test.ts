import {
  decodeBase64,
  decodeCondition,
  isUInt64String,
  localReject,
  MAX_DATA_BYTES,
  PacketJsonError,
  prepareFromJson,
  prepareToJson,
  replyFromJson,
  replyToJson,
  SpspJsonError,
  spspFromJson,
} from '@ilp-farm/protocol'
import { deserializeIlpPrepare, deserializeIlpReject, serializeIlpPrepare } from 'ilp-packet'
import { describe, expect, it } from 'vitest'
import { VECTORS } from './vectors.js'

/** The JSON packet form of @ilp-farm/protocol: the reference vectors through it and back, and what it refuses. */

function refusal(read: () => unknown): string {
  try {
    read()
  } catch (err) {
    if (err instanceof PacketJsonError) return err.message
    throw err
  }
  throw new Error('taken, not refused')
}

describe('prepares', () => {
  const prepare = deserializeIlpPrepare(VECTORS.prepare)
  const json = prepareToJson(prepare)

  it('writes the Prepare vector as decimal, base64 and ISO 8601, and reads it back to the same bytes', () => {
    expect(json).toEqual({
      amount: '107',
      destination: 'example.alice',
      executionCondition: Buffer.from('74e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de1', 'hex').toString('base64'),
      expiresAt: '2017-12-23T01:21:40.549Z',
      data: prepare.data.toString('base64'),
    })
    expect(serializeIlpPrepare(prepareFromJson(JSON.parse(JSON.stringify(json)))).equals(VECTORS.prepare)).toBe(true)
  })

  it('takes the condition as hex or url-safe base64, an offset time zone, and no data as empty', () => {
    const condition = prepare.executionCondition
    const { data: _data, ...withoutData } = json
    const read = prepareFromJson({
      ...withoutData,
      executionCondition: condition.toString('hex'),
      expiresAt: '2017-12-23T02:21:40.549+01:00',
    })
    expect(read.executionCondition.equals(condition)).toBe(true)
    expect(read.expiresAt.toISOString()).toBe('2017-12-23T01:21:40.549Z')
    expect(read.data.length).toBe(0)
    expect(prepareFromJson({ ...json, executionCondition: condition.toString('base64url') }).executionCondition.equals(condition)).toBe(true)
    expect(prepareFromJson({ ...json, amount: '18446744073709551615' }).amount).toBe('18446744073709551615')
  })

  it('refuses each bad field, naming it', () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ amount: 107 }, /^amount /],
      [{ amount: '0107' }, /^amount /],
      [{ amount: '-1' }, /^amount /],
      [{ amount: '18446744073709551616' }, /^amount /],
      [{ destination: 'example' }, /^destination /],
      [{ destination: 'alice.example' }, /^destination /],
      [{ executionCondition: Buffer.alloc(31).toString('base64') }, /^executionCondition /],
      [{ executionCondition: 'zz'.repeat(32) }, /^executionCondition /],
      [{ expiresAt: '2030-01-01' }, /^expiresAt /],
      [{ expiresAt: '2030-13-01T00:00:00Z' }, /^expiresAt /],
      [{ expiresAt: 1893456000000 }, /^expiresAt /],
      [{ data: '@@@@' }, /^data must be base64/],
      [{ data: 'A' }, /^data must be base64/],
      [{ data: Buffer.alloc(MAX_DATA_BYTES + 1).toString('base64') }, /^data must be at most 32767 bytes/],
    ]
    for (const [change, message] of cases) expect(refusal(() => prepareFromJson({ ...json, ...change }))).toMatch(message)
    expect(refusal(() => prepareFromJson(null))).toMatch(/must be an object/)
    expect(refusal(() => prepareFromJson([json]))).toMatch(/must be an object/)
    expect(prepareFromJson({ ...json, data: Buffer.alloc(MAX_DATA_BYTES).toString('base64') }).data.length).toBe(MAX_DATA_BYTES)
  })
})

describe('replies', () => {
  it('the Fulfill, Reject and F08 vectors go to JSON and back to the same bytes', () => {
    for (const vector of [VECTORS.fulfill, VECTORS.reject, VECTORS.f08Reject, VECTORS.ildcpResponse]) {
      expect(replyFromJson(JSON.parse(JSON.stringify(replyToJson(vector)))).equals(vector)).toBe(true)
    }
    expect(replyToJson(VECTORS.reject)).toMatchObject({ type: 'reject', code: 'F01', triggeredBy: 'example.us.bob', message: 'missing destination. ledger=example.us.' })
    expect(replyToJson(VECTORS.f08Reject)).toEqual({
      type: 'reject',
      code: 'F08',
      triggeredBy: 'test.connector',
      message: '',
      data: Buffer.from('00000000000000ff000000000000ffff', 'hex').toString('base64'),
    })
    expect(replyToJson(VECTORS.fulfill)).toEqual({
      type: 'fulfill',
      fulfillment: Buffer.from('c3866b48749ccf113b2e15c25d2407fbfc14476fe7296bb1bf1bcd9e6e416650', 'hex').toString('base64'),
      data: Buffer.from('673febd78a33b28e1c0db14c9a06251a05fa831ed4ed91ebcd150e7249c2e600', 'hex').toString('base64'),
    })
  })

  it('takes a reject without triggeredBy, message or data as empty ones', () => {
    const reject = deserializeIlpReject(replyFromJson({ type: 'reject', code: 'T04' }))
    expect(reject).toEqual({ code: 'T04', triggeredBy: '', message: '', data: Buffer.alloc(0) })
  })

  it('refuses replies that are neither, naming the field', () => {
    const fulfillment = Buffer.alloc(32, 7).toString('base64')
    const cases: Array<[unknown, RegExp]> = [
      [null, /must be an object/],
      ['fulfill', /must be an object/],
      [{ fulfillment }, /^type must be "fulfill" or "reject"/],
      [{ type: 'prepare' }, /^type must be/],
      [{ type: 'fulfill', fulfillment: Buffer.alloc(31).toString('base64') }, /^fulfillment must be 32 bytes/],
      [{ type: 'fulfill' }, /^fulfillment must be 32 bytes/],
      [{ type: 'fulfill', fulfillment, data: '!' }, /^data must be base64/],
      [{ type: 'reject', code: 'f01' }, /^code must be an ILP error code/],
      [{ type: 'reject', code: 'F0' }, /^code must be an ILP error code/],
      [{ type: 'reject', code: 'F01', triggeredBy: 'nowhere' }, /^triggeredBy must be an ILP address/],
      [{ type: 'reject', code: 'F01', message: 5 }, /^message must be a string/],
      [{ type: 'reject', code: 'F01', data: Buffer.alloc(MAX_DATA_BYTES + 1).toString('base64') }, /^data must be at most/],
    ]
    for (const [value, message] of cases) expect(refusal(() => replyFromJson(value))).toMatch(message)
  })

  it('a Prepare is not a reply', () => {
    expect(refusal(() => replyToJson(VECTORS.prepare))).toMatch(/expected a Fulfill or Reject, got packet type 12/)
  })

  it('localReject writes a Reject with no data', () => {
    expect(deserializeIlpReject(localReject('T01', 'test.wallet', 'the farm is not reachable'))).toEqual({
      code: 'T01',
      triggeredBy: 'test.wallet',
      message: 'the farm is not reachable',
      data: Buffer.alloc(0),
    })
  })
})

describe('field readers', () => {
  it('decodeBase64 takes standard and url-safe, padded or not; refuses other characters and impossible lengths', () => {
    expect(decodeBase64('+/8=')).toEqual(Buffer.from([0xfb, 0xff]))
    expect(decodeBase64('-_8')).toEqual(Buffer.from([0xfb, 0xff]))
    expect(decodeBase64('')).toEqual(Buffer.alloc(0))
    for (const bad of ['A', 'AAAAA', 'A===', 'AA AA', 'AA.A', '====x']) expect(decodeBase64(bad)).toBeUndefined()
  })

  it('decodeCondition takes exactly 32 bytes as hex or base64', () => {
    const bytes = Buffer.alloc(32, 0xab)
    expect(decodeCondition(bytes.toString('hex'))).toEqual(bytes)
    expect(decodeCondition(bytes.toString('hex').toUpperCase())).toEqual(bytes)
    expect(decodeCondition(bytes.toString('base64'))).toEqual(bytes)
    expect(decodeCondition(bytes.toString('base64url'))).toEqual(bytes)
    expect(decodeCondition(Buffer.alloc(33).toString('hex'))).toBeUndefined()
    expect(decodeCondition(Buffer.alloc(31).toString('base64'))).toBeUndefined()
  })

  it('isUInt64String takes canonical decimals from 0 to 2^64 - 1', () => {
    expect(['0', '1', '18446744073709551615'].map(isUInt64String)).toEqual([true, true, true])
    expect(['', '01', '-1', '+1', '1e3', '1.0', '18446744073709551616', '99999999999999999999999'].map(isUInt64String)).toEqual(Array(8).fill(false))
  })
})

describe('SPSP answers', () => {
  const secret = Buffer.alloc(32, 5)

  it('reads a destination and a 32-byte secret, other fields ignored', () => {
    expect(spspFromJson({ destination_account: 'g.farm.bob.x', shared_secret: secret.toString('base64'), receipts_enabled: false })).toEqual({
      destinationAccount: 'g.farm.bob.x',
      sharedSecret: secret,
    })
    expect(spspFromJson({ destination_account: 'g.farm.bob.x', shared_secret: secret.toString('base64url') }).sharedSecret).toEqual(secret)
  })

  it('refuses a bad address, a bad or short secret, and what is no object', () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ destination_account: 'bob', shared_secret: secret.toString('base64') }, /^destination_account must be an ILP address/],
      [{ destination_account: 7, shared_secret: secret.toString('base64') }, /^destination_account/],
      [{ destination_account: 'g.farm.bob', shared_secret: secret.subarray(1).toString('base64') }, /^shared_secret must be 32 bytes/],
      [{ destination_account: 'g.farm.bob', shared_secret: `${secret.toString('hex')}` }, /^shared_secret must be 32 bytes/],
      [{ destination_account: 'g.farm.bob' }, /^shared_secret/],
      [null, /^destination_account/],
      ['g.farm.bob', /^destination_account/],
    ]
    for (const [value, message] of cases) {
      expect(() => spspFromJson(value)).toThrow(SpspJsonError)
      expect(() => spspFromJson(value)).toThrow(message)
    }
  })
})
