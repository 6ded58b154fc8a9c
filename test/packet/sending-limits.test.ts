import { Type } from 'ilp-packet'
import { Agent } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The accounts' sending limits hold farm-wide: two workers on one Redis let
 * through together what one would, since every worker's packets of an
 * account pass the same reservation script. Real sockets, real Redis.
 */
let redis: TestRedis
let peer: TestPeer
let slowPeer: TestPeer
const farms: TestFarm[] = []
/** When each packet of `fast` reached its next hop. */
const fastArrivals: number[] = []
let peerInFlight = 0
let peerMaxInFlight = 0
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer((prepare) => {
    if (prepare.destination.startsWith('test.bob.x')) fastArrivals.push(Date.now())
    return fulfillKnown(prepare)
  })
  slowPeer = await startTestPeer(async (prepare) => {
    peerInFlight++
    peerMaxInFlight = Math.max(peerMaxInFlight, peerInFlight)
    await sleep(300)
    peerInFlight--
    return fulfillKnown(prepare)
  })
  const accounts = [
    account('fast', { minBalance: '-1000000000', maxPacketsPerSecond: 40 }),
    account('rich', { minBalance: '-1000000000', maxAmountPerSecond: '1000' }),
    account('wide', { minBalance: '-1000000000' }),
    account('bob', { relation: 'peer', outgoing: { url: peer.url }, routes: ['test.bob'] }),
    account('slow', { relation: 'peer', outgoing: { url: slowPeer.url }, routes: ['test.slow'] }),
  ]
  const config = { redis: { keyPrefix: 'limits:' }, limits: { maxInFlight: 5 } }
  for (const shard of [0, 1]) farms.push(await startTestFarm(redis.url, accounts, config, { shard }))
})

afterAll(async () => {
  for (const farm of farms) await farm.close()
  await Promise.all([peer?.close(), slowPeer?.close()])
  await redis?.close()
})

/** Sends from `from` through both workers at once, `perWorker` loops each, for `ms`; the codes of the answers. */
async function hammer(from: string, destination: string, amount: string, perWorker: number, ms: number): Promise<string[]> {
  const agent = new Agent({ connections: perWorker * 2 })
  const codes: string[] = []
  const deadline = Date.now() + ms
  try {
    await Promise.all(
      farms.flatMap((farm) =>
        Array.from({ length: perWorker }, async () => {
          while (Date.now() < deadline) {
            const reply = await sendIlp(farm.url, from, prepareTo(destination, amount, knownCondition()), { dispatcher: agent })
            codes.push(reply.packet?.type === Type.TYPE_ILP_FULFILL ? 'fulfill' : (reply.packet?.data as { code?: string } | undefined)?.code ?? `HTTP ${reply.status}`)
          }
        }),
      ),
    )
  } finally {
    await agent.close()
  }
  return codes
}

const count = (codes: string[], code: string) => codes.filter((c) => c === code).length

describe('sending limits, farm-wide across two workers', () => {
  it('maxPacketsPerSecond: the two workers together let through no more than the account’s rate in any second of Redis’ clock, and close to it (T05 beyond)', async () => {
    // Every grant happens between `started` and the last answer, so it falls in one of the seconds those
    // span on Redis' clock (this machine's): at most 40 in each. Arrival times at the next hop would lag
    // the grants by a loaded machine's scheduling delay, so the bound is checked on the seconds touched.
    const started = Date.now()
    const codes = await hammer('fast', 'test.bob.x', '1', 10, 3_000)
    const ended = Date.now()
    const secondsTouched = Math.floor(ended / 1000) - Math.floor(started / 1000) + 1
    const wholeSeconds = Math.floor(ended / 1000) - Math.ceil(started / 1000)
    const fulfilled = count(codes, 'fulfill')
    console.log(`maxPacketsPerSecond 40 over two workers: ${fulfilled} fulfilled, ${count(codes, 'T05')} T05 in ${secondsTouched} seconds touched`)
    expect(count(codes, 'T05')).toBeGreaterThan(0)
    expect(codes.filter((c) => c !== 'fulfill' && c !== 'T05')).toEqual([])
    expect(fastArrivals.length).toBe(fulfilled)
    expect(fulfilled).toBeLessThanOrEqual(40 * secondsTouched)
    // each whole second of hammering by 20 loops fills its 40
    expect(fulfilled).toBeGreaterThanOrEqual(36 * wholeSeconds)
  })

  it('maxAmountPerSecond: the amount sent per second stays within the limit (T04 beyond)', async () => {
    const started = Date.now()
    const codes = await hammer('rich', 'test.bob.y', '100', 5, 2_000)
    const seconds = (Date.now() - started) / 1000
    const fulfilled = count(codes, 'fulfill')
    expect(count(codes, 'T04')).toBeGreaterThan(0)
    expect(fulfilled * 100).toBeLessThanOrEqual(1000 * (Math.ceil(seconds) + 1))
    expect(fulfilled).toBeGreaterThanOrEqual(10 * (Math.floor(seconds) - 1))
  })

  it('maxInFlight (the farm default from `limits`): never more than 5 of the account’s packets at the next hop at once', async () => {
    const codes = await hammer('wide', 'test.slow.z', '1', 10, 1_500)
    expect(peerMaxInFlight).toBe(5)
    expect(count(codes, 'T05')).toBeGreaterThan(0)
    expect(count(codes, 'fulfill')).toBeGreaterThan(0)
  })
})
