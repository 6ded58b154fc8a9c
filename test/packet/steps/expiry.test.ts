import { describe, expect, it } from 'vitest'
import { IlpRejection } from '../../../src/packet/reject.js'
import { outgoingExpiry } from '../../../src/packet/steps/expiry.js'

describe('expiry step', () => {
  const deps = { minMessageWindowMs: 1_000, maxHoldTimeMs: 30_000 }
  const now = Date.parse('2030-01-01T00:00:00.000Z')

  it('the outgoing expiry is the incoming one less the message window', () => {
    expect(outgoingExpiry(new Date(now + 10_000), now, deps)).toEqual(new Date(now + 9_000))
  })

  it('a far expiry is capped at now + maxHoldTime', () => {
    expect(outgoingExpiry(new Date(now + 3_600_000), now, deps)).toEqual(new Date(now + 30_000))
  })

  it('exactly the message window left still goes out, expiring now', () => {
    expect(outgoingExpiry(new Date(now + 1_000), now, deps)).toEqual(new Date(now))
  })

  it('less than the message window left is R02, naming both', () => {
    expect(() => outgoingExpiry(new Date(now + 999), now, deps)).toThrow(new IlpRejection('R02', 'insufficient timeout: 999 ms left, 1000 ms needed'))
  })

  it('an expired packet is R02', () => {
    expect(() => outgoingExpiry(new Date(now - 5), now, deps)).toThrow(new IlpRejection('R02', 'insufficient timeout: -5 ms left, 1000 ms needed'))
  })
})
