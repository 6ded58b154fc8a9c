import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openChannelSubscriber, openSubscriber, publish } from '../../src/store/redis.js'
import { eventually } from '../helpers/async.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * A process's subscriptions to one Redis share one subscribed connection:
 * each message reaches the listeners of its own channel only, a channel is
 * unsubscribed after its last listener and the connection closed after the
 * last subscription, and after a lost connection every subscriber is told
 * and hears its channel again.
 */
let redis: TestRedis

beforeAll(async () => {
  redis = await startTestRedis()
})

afterAll(async () => {
  await redis?.close()
})

/** The server's subscribed connections, and the subscribers of a shard channel. */
const pubsubConnections = async () => ((await redis.client.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string).split('\n').filter((line) => line.trim() !== '').length
const subscribersOf = async (channel: string) => ((await redis.client.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number])[1]

describe('shared subscriber connection', () => {
  it('one connection for every subscription; messages by channel; unsubscribed after the last listener, closed after the last subscription', async () => {
    const heard: Record<string, string[]> = { a: [], a2: [], b: [], feed: [] }
    const a = await openSubscriber(redis.url, 'ch:a', { onMessage: (m) => heard.a!.push(m) })
    const a2 = await openSubscriber(redis.url, 'ch:a', { onMessageBuffer: (m) => heard.a2!.push(`bytes:${m.toString()}`) })
    const b = await openSubscriber(redis.url, 'ch:b', { onMessage: (m) => heard.b!.push(m) })
    const feed = await openChannelSubscriber(redis.url, { onMessage: (channel, m) => heard.feed!.push(`${channel}=${m}`) })
    await feed.join('ch:c')
    await feed.join('ch:d')
    try {
      expect(await pubsubConnections()).toBe(1)
      expect(await publish(redis.client, 'ch:a', 'one')).toBe(1)
      expect(await publish(redis.client, 'ch:b', 'two')).toBe(1)
      expect(await publish(redis.client, 'ch:d', 'three')).toBe(1)
      await eventually(() => expect(heard).toEqual({ a: ['one'], a2: ['bytes:one'], b: ['two'], feed: ['ch:d=three'] }))

      // a channel keeps its subscription while a listener is left; closing twice is closing once
      await a.close()
      await a.close()
      expect(await subscribersOf('ch:a')).toBe(1)
      await publish(redis.client, 'ch:a', 'four')
      await eventually(() => expect(heard.a2).toEqual(['bytes:one', 'bytes:four']))
      expect(heard.a).toEqual(['one'])
      await a2.close()
      expect(await subscribersOf('ch:a')).toBe(0)
      await a2.close()
      await feed.leave('ch:c')
      expect(await subscribersOf('ch:c')).toBe(0)
      expect(await subscribersOf('ch:d')).toBe(1)
      expect(await pubsubConnections()).toBe(1)
      await publish(redis.client, 'ch:b', 'five')
      await eventually(() => expect(heard.b).toEqual(['two', 'five']))
    } finally {
      await Promise.all([a.close(), a2.close(), b.close(), feed.close()])
    }
    await eventually(async () => expect(await pubsubConnections()).toBe(0))
    // a later subscription opens a new connection
    const again = await openSubscriber(redis.url, 'ch:a', { onMessage: (m) => heard.a!.push(m) })
    expect(await pubsubConnections()).toBe(1)
    await publish(redis.client, 'ch:a', 'six')
    await eventually(() => expect(heard.a).toEqual(['one', 'six']))
    await again.close()
  })

  it('a second subscription to a channel whose SSUBSCRIBE is still on its way resolves only once Redis has it', async () => {
    const heard: string[] = []
    const resolved: string[] = []
    const opening = openSubscriber(redis.url, 'ch:e', { onMessage: (m) => heard.push(`1:${m}`) })
    void opening.then(() => resolved.push('first'))
    const second = await openSubscriber(redis.url, 'ch:e', { onMessage: (m) => heard.push(`2:${m}`) })
    resolved.push('second')
    const first = await opening
    // the first resolves once its SSUBSCRIBE is answered; the second not before
    expect(resolved).toEqual(['first', 'second'])
    try {
      expect(await publish(redis.client, 'ch:e', 'now')).toBe(1)
      await eventually(() => expect(heard.sort()).toEqual(['1:now', '2:now']))
    } finally {
      await Promise.all([first.close(), second.close()])
    }
  })

  it('after the connection is lost, every subscriber is told once and hears its channel again', async () => {
    const reconnects = { x: 0, feed: 0 }
    const heard: string[] = []
    const x = await openSubscriber(redis.url, 'ch:x', { onMessage: (m) => heard.push(`x:${m}`), onReconnect: () => reconnects.x++ })
    const feed = await openChannelSubscriber(redis.url, { onMessage: (channel, m) => heard.push(`${channel}:${m}`), onReconnect: () => reconnects.feed++ })
    await feed.join('ch:y')
    await feed.join('ch:z')
    try {
      expect(reconnects).toEqual({ x: 0, feed: 0 })
      await redis.client.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
      await eventually(() => expect(reconnects).toEqual({ x: 1, feed: 1 }))
      await eventually(async () => expect(await subscribersOf('ch:z')).toBe(1))
      await publish(redis.client, 'ch:x', '1')
      await publish(redis.client, 'ch:z', '2')
      await eventually(() => expect(heard).toEqual(['x:1', 'ch:z:2']))
    } finally {
      await Promise.all([x.close(), feed.close()])
    }
  })
})
