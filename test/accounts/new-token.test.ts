import { describe, expect, it } from 'vitest'
import { newToken } from '../../src/accounts/registry.js'

describe('newToken', () => {
  it('is 256 bits of base64url that never begins with "-", so a command line never reads it as an option', () => {
    // With a plain base64url draw, one in 64 begins with "-": 4,000 draws would meet it all but surely.
    const tokens = Array.from({ length: 4000 }, newToken)
    for (const token of tokens) {
      expect(token).toMatch(/^[A-Za-z0-9_][A-Za-z0-9_-]{42}$/)
      expect(Buffer.from(token, 'base64url')).toHaveLength(32)
    }
    expect(new Set(tokens).size).toBe(tokens.length)
    expect(new Set(tokens.map((t) => t[0])).size).toBeGreaterThan(40)
  })
})
