import { describe, expect, it } from 'vitest'
import { parallelismOf } from '../../src/packet/parallelism.js'

describe('parallelismOf', () => {
  it('maps the first byte of the id to 1..4, as documented', () => {
    expect(parallelismOf({ id: 'alice' })).toBe(2)
    expect(parallelismOf({ id: 'bob' })).toBe(3)
    expect(parallelismOf({ id: 'carol' })).toBe(4)
    expect(parallelismOf({ id: 'dave' })).toBe(1)
    expect(parallelismOf({ id: '0xyz' })).toBe(1)
    for (let c = 33; c < 127; c++) expect([1, 2, 3, 4]).toContain(parallelismOf({ id: String.fromCharCode(c) }))
  })

  it('takes the per-account override', () => {
    expect(parallelismOf({ id: 'alice', parallelism: 16 })).toBe(16)
  })
})
