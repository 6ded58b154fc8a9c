import { Reader } from 'oer-utils'
import { describe, expect, it } from 'vitest'
import { IlpRejection } from '../../../src/packet/reject.js'
import { validatePacket } from '../../../src/packet/steps/validate.js'
import { accountOf, arrived } from './core.js'

const prepare = (destination: string, amount: string) => ({
  amount,
  destination,
  executionCondition: Buffer.alloc(32, 1),
  expiresAt: new Date(Date.now() + 10_000),
  data: Buffer.alloc(0),
})

describe('validate step', () => {
  const alice = accountOf('alice', { maxPacketAmount: '1000' })

  it('passes a packet to an ILP address within the sender’s packet limit', () => {
    expect(() => validatePacket(arrived(alice, prepare('test.farm.bob', '1000')))).not.toThrow()
  })

  it('a destination that is not an ILP address is F01', () => {
    // the wire parser refuses such a destination too; this step also guards packets built from JSON
    const ctx = { ...arrived(alice, prepare('test.farm.bob', '1')), prepare: prepare('not an address', '1') }
    expect(() => validatePacket(ctx)).toThrow(new IlpRejection('F01', 'invalid packet: destination is not an ILP address'))
  })

  it('an amount above the sender’s maxPacketAmount is F08, its data the amount and the maximum', () => {
    let rejection: IlpRejection | undefined
    try {
      validatePacket(arrived(alice, prepare('test.farm.bob', '1001')))
    } catch (err) {
      rejection = err as IlpRejection
    }
    expect(rejection).toBeInstanceOf(IlpRejection)
    expect([rejection!.code, rejection!.message]).toEqual(['F08', 'packet amount exceeds maximum'])
    const data = new Reader(rejection!.data)
    expect([data.readUInt64(), data.readUInt64()]).toEqual(['1001', '1000'])
  })

  it('an account without maxPacketAmount sends any amount', () => {
    const bob = accountOf('bob')
    expect(() => validatePacket(arrived(bob, prepare('test.farm.alice', '18446744073709551615')))).not.toThrow()
  })
})
