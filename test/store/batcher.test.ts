import { describe, expect, it } from 'vitest'
import { CallBatcher } from '../../src/store/batcher.js'

/** A turn of the event loop: what setImmediate runs after. */
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve))

/** A batcher whose sender records each batch and answers each item with itself. */
function recording(opts?: ConstructorParameters<typeof CallBatcher<string>>[1]) {
  const batches: string[][] = []
  const batcher = new CallBatcher<string>(async (items) => {
    batches.push([...items])
    return items.map((i) => (i === 'bad' ? new Error('bad item') : `${i}!`))
  }, opts)
  return { batches, batcher }
}

describe('CallBatcher', () => {
  it('sends the calls of one turn as one batch, in order, each answered with its own result or error', async () => {
    const { batches, batcher } = recording()
    const results = Promise.allSettled(['a', 'bad', 'c'].map((i) => batcher.call(i)))
    expect(batches).toEqual([])
    const settled = await results
    expect(batches).toEqual([['a', 'bad', 'c']])
    expect(settled.map((r) => (r.status === 'fulfilled' ? r.value : String(r.reason)))).toEqual(['a!', 'Error: bad item', 'c!'])
  })

  it('one turn by default: calls of the next turn go in a batch of their own', async () => {
    const { batches, batcher } = recording()
    const first = batcher.call('a')
    await nextTurn()
    const second = batcher.call('b')
    await Promise.all([first, second])
    expect(batches).toEqual([['a'], ['b']])
  })

  it('with turns 2, collects the calls of two turns into one batch, and sends it without a third', async () => {
    const { batches, batcher } = recording({ turns: 2 })
    const calls = [batcher.call('a')]
    await nextTurn()
    expect(batches).toEqual([])
    calls.push(batcher.call('b'))
    await nextTurn()
    // sent in the second turn: a call made after it starts a new batch
    expect(batches).toEqual([['a', 'b']])
    calls.push(batcher.call('c'))
    expect(await Promise.all(calls)).toEqual(['a!', 'b!', 'c!'])
    expect(batches).toEqual([['a', 'b'], ['c']])
  })

  it('sends a full batch at once; the turn scheduled for it then sends nothing early', async () => {
    const { batches, batcher } = recording({ turns: 2, maxBatch: 3 })
    const calls = ['a', 'b', 'c'].map((i) => batcher.call(i))
    expect(batches).toEqual([['a', 'b', 'c']])
    calls.push(batcher.call('d'))
    await nextTurn()
    // the full batch's turn has come: d's batch still waits for its own second turn
    expect(batches).toEqual([['a', 'b', 'c']])
    calls.push(batcher.call('e'))
    await Promise.all(calls)
    expect(batches).toEqual([['a', 'b', 'c'], ['d', 'e']])
  })

  it('a failed send rejects every call of its batch', async () => {
    const batcher = new CallBatcher<string>(() => Promise.reject(new Error('connection lost')))
    const settled = await Promise.allSettled([batcher.call('a'), batcher.call('b')])
    expect(settled.map((r) => r.status === 'rejected' && String(r.reason))).toEqual(['Error: connection lost', 'Error: connection lost'])
  })

  it('refuses turns that are not a whole number of at least 1', () => {
    expect(() => new CallBatcher<string>(async () => [], { turns: 0 })).toThrow('turns must be an integer of 1 or more, got 0')
    expect(() => new CallBatcher<string>(async () => [], { turns: 1.5 })).toThrow('got 1.5')
  })
})
