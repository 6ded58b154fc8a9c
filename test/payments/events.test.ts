import { Redis } from 'ioredis'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * GET /rpc/events: an account's payment events as Server-Sent Events, from
 * whichever worker the listener is on: the receiver hears of a payment the
 * other worker's hosted receiver credited, the sender of its own ilp_pay.
 * Real Redis (sharded pub/sub), real sockets.
 */
let redis: TestRedis
let client: Redis
const farms: TestFarm[] = []
const PREFIX = 'events:'

beforeAll(async () => {
  redis = await startTestRedis()
  client = new Redis(redis.url)
  const accounts = [account('alice', { minBalance: '-1000000000' }), account('bob')]
  const config = { redis: { keyPrefix: PREFIX }, payments: { allowPrivateSpsp: true, allowHttpSpsp: true } }
  for (const shard of [0, 1]) farms.push(await startTestFarm(redis.url, accounts, config, { shard }))
})

afterAll(async () => {
  for (const farm of farms) await farm.close()
  client?.disconnect()
  await redis?.close()
})

interface Feed {
  status: number
  events: Array<{ event: string; data: Record<string, unknown> }>
  close(): void
  until(check: (events: Feed['events']) => boolean, ms?: number): Promise<void>
}

async function listen(farm: TestFarm, token: string | undefined): Promise<Feed> {
  const abort = new AbortController()
  const res = await request(`${farm.url}/rpc/events`, { headers: token ? { authorization: `Bearer ${token}` } : {}, signal: abort.signal })
  const events: Feed['events'] = []
  if (res.statusCode === 200) {
    void (async () => {
      let buffer = ''
      try {
        for await (const chunk of res.body) {
          buffer += (chunk as Buffer).toString('utf8')
          let end: number
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end)
            buffer = buffer.slice(end + 2)
            const event = /^event: (.*)$/m.exec(block)?.[1]
            const data = /^data: (.*)$/m.exec(block)?.[1]
            if (event !== undefined && data !== undefined) events.push({ event, data: JSON.parse(data) as Record<string, unknown> })
          }
        }
      } catch {
        // aborted
      }
    })()
  } else await res.body.dump()
  return {
    status: res.statusCode,
    events,
    close: () => abort.abort(),
    async until(check, ms = 10_000) {
      const deadline = Date.now() + ms
      while (!check(events)) {
        if (Date.now() > deadline) throw new Error(`events so far: ${JSON.stringify(events)}`)
        await new Promise((r) => setTimeout(r, 20))
      }
    },
  }
}

async function pay(farm: TestFarm, token: string, paymentPointer: string, sourceAmount: string): Promise<Record<string, unknown>> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_pay', params: { paymentPointer, sourceAmount } }),
  })
  return ((await res.body.json()) as { result: Record<string, unknown> }).result
}

const subscribers = async (accountId: string) => ((await client.call('PUBSUB', 'SHARDNUMSUB', `${PREFIX}{acct:${accountId}}:events`)) as [string, number])[1]

describe('GET /rpc/events', () => {
  it('tells the receiver of each credited packet of an incoming payment, and the sender of its payment’s start and end, across workers', async () => {
    const bobFeed = await listen(farms[1]!, 'bob-token')
    const aliceFeed = await listen(farms[1]!, 'alice-token')
    expect([bobFeed.status, aliceFeed.status]).toEqual([200, 200])
    expect(await subscribers('bob')).toBe(1)
    const done = await pay(farms[0]!, 'alice-token', `${farms[0]!.url}/accounts/bob/spsp`, '70000')
    expect(done).toMatchObject({ state: 'completed', amount: '70000' })
    // incoming: the entry after each packet, its amount the running total
    await bobFeed.until((events) => events.some((e) => e.data.amount === '70000'))
    expect(bobFeed.events.every((e) => e.event === 'payment' && e.data.direction === 'incoming' && e.data.counterpart === 'test.farm.alice')).toBe(true)
    const totals = bobFeed.events.map((e) => BigInt(e.data.amount as string))
    expect(totals).toEqual([...totals].sort((a, b) => (a < b ? -1 : 1)))
    // outgoing: running, then completed
    await aliceFeed.until((events) => events.some((e) => e.data.state === 'completed'))
    expect(aliceFeed.events.map((e) => [e.data.id, e.data.state])).toEqual([
      [done.id, 'running'],
      [done.id, 'completed'],
    ])
    bobFeed.close()
    aliceFeed.close()
    // no listener left: no subscription left
    const deadline = Date.now() + 5_000
    while ((await subscribers('bob')) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(await subscribers('bob')).toBe(0)
  })

  it('needs the account’s token, and holds at most 5 listeners of one account per worker', async () => {
    expect((await listen(farms[0]!, undefined)).status).toBe(401)
    expect((await listen(farms[0]!, 'wrong-token')).status).toBe(401)
    const feeds = await Promise.all(Array.from({ length: 5 }, () => listen(farms[0]!, 'bob-token')))
    expect(feeds.map((f) => f.status)).toEqual([200, 200, 200, 200, 200])
    expect((await listen(farms[0]!, 'bob-token')).status).toBe(429)
    expect((await listen(farms[1]!, 'bob-token')).status).toBe(200) // another worker has its own
    for (const f of feeds) f.close()
  })
})
