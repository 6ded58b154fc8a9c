import { describe, expect, it } from 'vitest'
import { Repeater } from '../../src/util/repeat.js'
import { sleep } from '../helpers/async.js'

describe('Repeater', () => {
  it('started again while a run from before stop() is still going: one chain of runs, never two at once', async () => {
    let running = 0
    let most = 0
    let runs = 0
    const repeater = new Repeater(20, async () => {
      runs++
      most = Math.max(most, ++running)
      await sleep(100)
      running--
    })
    void repeater.start()
    await sleep(10)
    // the sweeper's case: leadership lost (stop) and taken again (start) while a sweep is in progress
    const stopped = repeater.stop()
    void repeater.start()
    await sleep(50)
    runs = 0
    await sleep(600)
    await repeater.stop()
    await stopped
    expect(most).toBe(1)
    // one chain: a run of 100 ms every 120 ms at most, so 5 or 6 runs in 600 ms (two chains: about 10)
    expect(runs).toBeLessThanOrEqual(6)
  })
})
