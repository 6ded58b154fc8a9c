import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoutedPacket } from '../../../src/packet/ports.js'
import { IlpRejection } from '../../../src/packet/reject.js'
import { reserve } from '../../../src/packet/steps/reserve.js'
import { Ledger } from '../../../src/store/ledger.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, arrived, routed, startCore, type TestCore } from './core.js'

let redis: TestRedis
let core: TestCore
const url = 'http://127.0.0.1:9/ilp' // never called: nothing is forwarded here

beforeAll(async () => {
  redis = await startTestRedis()
  core = await startCore(redis.url, [
    accountInput('alice', { minBalance: '-100' }),
    accountInput('bob', { outgoing: { url }, maxBalance: '50' }),
    accountInput('pat', { relation: 'peer', outgoing: { url }, routes: ['test.pat'] }),
    accountInput('ivy', { minBalance: '-1000', maxInFlight: 1 }),
    accountInput('tom', { minBalance: '-1000', maxAmountPerSecond: '10' }),
    accountInput('una', { minBalance: '-1000' }),
    accountInput('val', { minBalance: '-1000' }),
  ])
})
afterAll(async () => {
  await core?.close()
  await redis?.close()
})

function packet(from: string, destination: string, amount: string): Promise<RoutedPacket> {
  const prepare = { amount, destination, executionCondition: Buffer.alloc(32, 5), expiresAt: new Date(Date.now() + 10_000), data: Buffer.alloc(0) }
  return routed(core, arrived(core.account(from), prepare))
}

const balance = async (id: string) => (await core.ledger.balance(id)).balance

async function refusal(ctx: RoutedPacket, deps: Parameters<typeof reserve>[1] = core): Promise<[string, string]> {
  try {
    await reserve(ctx, deps)
  } catch (err) {
    if (err instanceof IlpRejection) return [err.code, err.message]
    throw err
  }
  throw new Error('reserved')
}

describe('reserve step', () => {
  it('reserves the incoming amount against the sender’s credit; beyond its minBalance, T04 and no change', async () => {
    await reserve(await packet('alice', 'test.pat.shop', '60'), core)
    expect(await balance('alice')).toBe('-60')
    expect(await refusal(await packet('alice', 'test.pat.shop', '41'))).toEqual(['T04', 'insufficient liquidity: the sender has not enough balance or credit'])
    expect(await balance('alice')).toBe('-60')
    await reserve(await packet('alice', 'test.pat.shop', '40'), core)
    expect(await balance('alice')).toBe('-100')
  })

  it('the same packet id twice while in flight is F00, debited once', async () => {
    const ctx = await packet('una', 'test.pat.shop', '7')
    await reserve(ctx, core)
    expect(await refusal(ctx)).toEqual(['F00', 'duplicate packet: a packet with this id is already in flight'])
    expect(await balance('una')).toBe('-7')
  })

  it('a next hop that would pass its maxBalance is T04, and the sender keeps its balance', async () => {
    const before = await balance('una')
    expect(await refusal(await packet('una', 'test.farm.bob', '51'))).toEqual(['T04', 'insufficient liquidity: the next hop would exceed its maximum balance'])
    expect(await balance('una')).toBe(before)
    await reserve(await packet('una', 'test.farm.bob', '50'), core)
    expect(BigInt(await balance('una'))).toBe(BigInt(before) - 50n)
  })

  it('split in one call per account (as on a cluster), an outgoing record after the expiry by Redis’ clock is R00, nothing reserved', async () => {
    // on one Redis the chain writes both records at once and checks no expiry: only a split outgoing record can
    // be late (a packet without one is its incoming record alone, refunded after its expiry as on one Redis)
    const split = new Ledger(core.redis, core.config.redis.keyPrefix, { split: true, owesCredits: false })
    await split.load()
    const before = await balance('una')
    const ctx = { ...(await packet('una', 'test.pat.shop', '3')), outExpiresAt: new Date(Date.now() - 1_000) }
    expect(await refusal(ctx, { ...core, ledger: split })).toEqual(['R00', 'packet expired before it could be forwarded'])
    expect(await balance('una')).toBe(before)
  })

  it('an account’s own maxInFlight: the packet beyond it is T05', async () => {
    await reserve(await packet('ivy', 'test.pat.shop', '1'), core)
    expect(await refusal(await packet('ivy', 'test.pat.shop', '1'))).toEqual(['T05', 'rate limited: too many packets in flight from this account'])
    expect(await balance('ivy')).toBe('-1')
  })

  it('the farm’s default limits apply to an account without its own', async () => {
    const deps = { ...core, limits: { maxInFlight: 2 } }
    await reserve(await packet('val', 'test.pat.shop', '1'), deps)
    await reserve(await packet('val', 'test.pat.shop', '1'), deps)
    expect(await refusal(await packet('val', 'test.pat.shop', '1'), deps)).toEqual(['T05', 'rate limited: too many packets in flight from this account'])
    expect(await balance('val')).toBe('-2')
    // ivy's own maxInFlight (1) wins over the default
    expect(await refusal(await packet('ivy', 'test.pat.shop', '1'), deps)).toEqual(['T05', 'rate limited: too many packets in flight from this account'])
  })

  it('more than the account’s maxAmountPerSecond is T04', async () => {
    expect(await refusal(await packet('tom', 'test.pat.shop', '11'))).toEqual(['T04', 'insufficient liquidity: the account sent its maximum amount this second'])
    expect(await balance('tom')).toBe('0')
  })

  it('a ledger whose Redis cannot be reached: T00', async () => {
    const down = new Redis({ port: 9, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    try {
      const deps = { ledger: new Ledger(down, 'down:'), shard: 0, log: pino({ level: 'silent' }) }
      expect(await refusal(await packet('una', 'test.pat.shop', '1'), deps)).toEqual(['T00', 'internal error: balance store unavailable'])
    } finally {
      down.disconnect()
    }
  })
})
