import { describe, expect, it } from 'vitest'
import { LruMap } from '../../src/accounts/account-cache.js'

describe('LruMap', () => {
  it('holds at most its capacity, keeps what is read, and says what it drops', () => {
    const dropped: number[] = []
    const map = new LruMap<number, string>(10, (k) => dropped.push(k))
    for (let i = 0; i < 1000; i++) {
      map.set(i, `v${i}`)
      expect(map.get(0)).toBe('v0') // read all along: never dropped
      expect(map.size).toBeLessThanOrEqual(10)
    }
    expect(map.get(999)).toBe('v999')
    expect(map.get(1)).toBeUndefined()
    expect(dropped).not.toContain(0)
    expect(dropped.length).toBe(1000 - map.size)
    // nothing is both held and dropped
    expect([...map.keys()].filter((k) => dropped.includes(k))).toEqual([])
  })

  it('replaces and deletes in either generation', () => {
    const map = new LruMap<string, number>(4)
    map.set('a', 1)
    map.set('b', 2)
    map.set('c', 3) // a and b age
    map.set('a', 10)
    expect(map.get('a')).toBe(10)
    expect(map.delete('b')).toBe(true)
    expect(map.has('b')).toBe(false)
    expect(map.get('c')).toBe(3)
  })
})
