import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Adjustments } from '../../src/accounts/adjustments.js'
import { parseUnrelayed, SETTLE_RELAY } from '../../src/accounts/settlement-relay.js'
import { SETTLE_CHECK, Settlements } from '../../src/accounts/settlement.js'
import type { AccountConfig } from '../../src/config/schema.js'
import { Keys } from '../../src/store/keys.js'
import { LuaScript } from '../../src/store/lua-script.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The settlement trigger in three steps against a real Redis: the check in
 * the account's slot, the relay to the farm's stream, the mark in the
 * account's slot. A crossing makes one request whatever the number of
 * clients; a request left between the steps is relayed by the account's next
 * check, and appears in the stream once.
 */
let redis: TestRedis
let second: Redis
const log = pino({ level: 'silent' })

beforeAll(async () => {
  redis = await startTestRedis()
  second = new Redis(redis.url)
})

afterAll(async () => {
  second?.disconnect()
  await redis?.close()
})

function sink(id: string): AccountConfig {
  return { id, relation: 'peer', assetCode: 'USD', assetScale: 6, minBalance: '0', settleThreshold: '1000', settleTo: '200' } as AccountConfig
}

async function streamOf(keys: Keys): Promise<Array<Record<string, string>>> {
  const entries = (await redis.client.xrange(keys.settlements, '-', '+')) as Array<[string, string[]]>
  return entries.map(([, fields]) => Object.fromEntries(fields.flatMap((f, i) => (i % 2 === 0 ? [[f, fields[i + 1]!]] : []))))
}

describe('settlement requests in three steps', () => {
  it('a crossing under concurrent credits from two clients makes exactly one request', async () => {
    const keys = new Keys('c1:')
    const account = sink('bob')
    const clients = [new Settlements(redis.client, keys, log), new Settlements(second, keys, log)]
    const conns = [redis.client, second]
    // 120 credits of 10, half on each client: each moves the balance, then checks, as the fulfill path does
    const made = await Promise.all(
      Array.from({ length: 120 }, async (_, i) => {
        await conns[i % 2]!.hincrby(keys.account('bob'), 'cold', 10)
        return clients[i % 2]!.afterCredit(account)
      }),
    )
    const ids = made.filter((id) => id !== undefined)
    expect(ids).toHaveLength(1)
    expect(ids[0]).toMatch(/^bob:\d+-1$/)
    const stream = await streamOf(keys)
    expect(stream).toHaveLength(1)
    expect(stream[0]).toMatchObject({ id: ids[0], account: 'bob', threshold: '1000', settleTo: '200' })
    expect(BigInt(stream[0]!.amount!)).toBe(BigInt(stream[0]!.balance!) - 200n)
    expect(await redis.client.hget(keys.account('bob'), 'settlePending')).toBe(ids[0])
    // relayed: the account's slot keeps nothing more of it
    expect(await redis.client.hlen(keys.settleRequests('bob'))).toBe(0)
    expect((await clients[0]!.recent()).map((r) => r.id)).toEqual(ids)
  })

  it('a request left after step 1 (a crash) is relayed by the next check, once', async () => {
    const keys = new Keys('c2:')
    const account = sink('carol')
    const settlements = new Settlements(redis.client, keys, log)
    await redis.client.hset(keys.account('carol'), 'cold', '1500')
    // step 1 alone, as a worker that died before relaying it
    const [id] = (await SETTLE_CHECK.run(redis.client, [keys.account('carol'), keys.settleRequests('carol')], ['carol', '1000', '200'])) as [string, unknown]
    expect(id).toMatch(/^carol:/)
    expect(await streamOf(keys)).toEqual([])
    // the next credit's check records nothing new (one is open) but relays the one left
    expect(await settlements.afterCredit(account)).toBeUndefined()
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    // later checks do not relay it again
    await settlements.afterCredit(account)
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    expect(await redis.client.hlen(keys.settleRequests('carol'))).toBe(0)
  })

  it('a request left after step 1 is relayed by the next deposit or withdrawal, even one that is refused, and paying it closes it', async () => {
    const keys = new Keys('c3:')
    const account = sink('dave')
    const settlements = new Settlements(redis.client, keys, log)
    const adjustments = new Adjustments(redis.client, keys, settlements.relay)
    await redis.client.hset(keys.account('dave'), 'cold', '1200')
    const [id] = (await SETTLE_CHECK.run(redis.client, [keys.account('dave'), keys.settleRequests('dave')], ['dave', '1000', '200'])) as [string, unknown]
    // a withdrawal below minBalance is refused, and still relays what the account has
    expect(await adjustments.adjust(account, 'withdrawal', '5000', 'too-much')).toEqual({ status: 'insufficient-balance', balance: '1200' })
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    expect(await redis.client.hlen(keys.settleRequests('dave'))).toBe(0)
    // paying it (Idempotency-Key = its id) closes it; a deposit then crosses again: the next request, relayed at once
    expect(await adjustments.adjust(account, 'withdrawal', '1000', id)).toEqual({ status: 'applied', balance: '200' })
    expect(await redis.client.hget(keys.account('dave'), 'settlePending')).toBeNull()
    const deposit = await adjustments.adjust(account, 'deposit', '900', 'top-up')
    expect(deposit).toMatchObject({ status: 'applied', balance: '1100', settlementId: expect.stringMatching(/^dave:\d+-2$/) })
    const stream = await streamOf(keys)
    expect(stream.map((e) => e.id)).toEqual([id, (deposit as { settlementId: string }).settlementId])
    expect(stream[1]).toMatchObject({ amount: '900', balance: '1100' })
  })

  it('step 2 run twice appends once', async () => {
    const keys = new Keys('c4:')
    const settlements = new Settlements(redis.client, keys, log)
    await redis.client.hset(keys.account('erin'), 'cold', '1000')
    const [, unrelayed] = (await SETTLE_CHECK.run(redis.client, [keys.account('erin'), keys.settleRequests('erin')], ['erin', '1000', '0'])) as [string, unknown]
    const [request] = parseUnrelayed('erin', unrelayed)
    expect(request).toMatchObject({ account: 'erin', seq: 1, amount: '1000', balance: '1000', threshold: '1000', settleTo: '0' })
    const first = await settlements.relay.relayOne(request!)
    const again = await settlements.relay.relayOne(request!)
    expect(first).toMatch(/^\d+-\d+$/)
    expect(again).toBeUndefined()
    expect(await streamOf(keys)).toHaveLength(1)
  })

  it('a request appended but not marked (a crash between steps 2 and 3) is marked by the next check, not appended again', async () => {
    const keys = new Keys('c6:')
    const account = sink('gus')
    const settlements = new Settlements(redis.client, keys, log)
    await redis.client.hset(keys.account('gus'), 'cold', '1000')
    const [id, unrelayed] = (await SETTLE_CHECK.run(redis.client, [keys.account('gus'), keys.settleRequests('gus')], ['gus', '1000', '200'])) as [string, unknown]
    const [r] = parseUnrelayed('gus', unrelayed)
    await SETTLE_RELAY.run(redis.client, [keys.settlements, keys.settlementsRelayed], [r!.id, r!.account, r!.amount, r!.balance, r!.threshold, r!.settleTo, r!.requestedAt])
    expect(await redis.client.hlen(keys.settleRequests('gus'))).toBe(1)
    await settlements.afterCredit(account)
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    expect(await redis.client.hlen(keys.settleRequests('gus'))).toBe(0)
  })

  it('the leader relays what a worker that died after step 1 left, with no other check of the account', async () => {
    const keys = new Keys('c7:')
    const dead = new Settlements(redis.client, keys, log)
    const leader = new Settlements(redis.client, keys, log)
    await redis.client.hset(keys.account('hal'), 'cold', '1000')
    // the worker registers the check, runs step 1, and dies
    await dead.relay.touch('hal')
    const [id] = (await SETTLE_CHECK.run(redis.client, [keys.account('hal'), keys.settleRequests('hal')], ['hal', '1000', '200'])) as [string, unknown]
    // within the grace the leader leaves it to the worker
    expect(await leader.relayLeftovers()).toBe(0)
    expect(await streamOf(keys)).toEqual([])
    await new Promise((r) => setTimeout(r, 5))
    expect(await leader.relayLeftovers(1)).toBe(1)
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    expect(await redis.client.hlen(keys.settleRequests('hal'))).toBe(0)
    expect(await redis.client.zcard(keys.settlementsTouched)).toBe(0)
    // a check registers its account; the leader forgets it only if it was not checked again since it looked
    await leader.afterCredit(sink('hal'))
    const [, at] = await redis.client.zrange(keys.settlementsTouched, 0, -1, 'WITHSCORES')
    expect(Number(at)).toBeGreaterThan(0)
    await redis.client.zadd(keys.settlementsTouched, 'GT', Number(at) + 10, 'hal') // checked again
    const touched = new LuaScript('accounts/settle-touched.lua')
    expect(await touched.run(redis.client, [keys.settlementsTouched], ['forget', 'hal', at!])).toBe(0)
    expect(await touched.run(redis.client, [keys.settlementsTouched], ['forget', 'hal', String(Number(at) + 10)])).toBe(1)
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
  })

  it('a relay that fails is retried until it lands', async () => {
    const keys = new Keys('c5:')
    const account = sink('fay')
    const settlements = new Settlements(redis.client, keys, log)
    await redis.client.hset(keys.account('fay'), 'cold', '1000')
    // the farm's stream key holds a string: step 2 fails (WRONGTYPE) while it does
    await redis.client.set(keys.settlements, 'in the way')
    const id = await settlements.afterCredit(account)
    expect(id).toMatch(/^fay:/)
    expect(settlements.relay.backlog).toBe(1)
    expect(await redis.client.hlen(keys.settleRequests('fay'))).toBe(1)
    await redis.client.del(keys.settlements)
    const start = Date.now()
    while (settlements.relay.backlog > 0 && Date.now() - start < 5_000) await new Promise((r) => setTimeout(r, 20))
    expect(settlements.relay.backlog).toBe(0)
    expect((await streamOf(keys)).map((e) => e.id)).toEqual([id])
    expect(await redis.client.hlen(keys.settleRequests('fay'))).toBe(0)
    expect(await settlements.close()).toBe(0)
  })
})
