import { deserializeIlpReject, serializeIlpFulfill, serializeIlpReject } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { RoutedPacket } from '../../../src/packet/ports.js'
import { IlpRejection } from '../../../src/packet/reject.js'
import { reserve } from '../../../src/packet/steps/reserve.js'
import { hopOutcome, settle } from '../../../src/packet/steps/settle.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, arrived, routed, startCore, type TestCore } from './core.js'

let redis: TestRedis
let core: TestCore
const url = 'http://127.0.0.1:9/ilp' // never called: the tests hand settle the next hop's answer

beforeAll(async () => {
  redis = await startTestRedis()
  core = await startCore(redis.url, [
    accountInput('alice', { minBalance: '-1000' }),
    accountInput('pat', { relation: 'peer', outgoing: { url }, routes: ['test.pat'] }),
  ])
})
afterAll(async () => {
  await core?.close()
  await redis?.close()
})

const balances = async () => [(await core.ledger.balance('alice')).balance, (await core.ledger.balance('pat')).balance]

/** A packet from alice to pat, reserved. */
async function reserved(amount: string): Promise<RoutedPacket> {
  const prepare = { amount, destination: 'test.pat.shop', executionCondition: Buffer.alloc(32, 5), expiresAt: new Date(Date.now() + 10_000), data: Buffer.alloc(0) }
  const ctx = await routed(core, arrived(core.account('alice'), prepare))
  await reserve(ctx, core)
  return ctx
}

describe('settle step', () => {
  it('a fulfill credits the next hop, the sender’s debit stands, and the next hop’s bytes go back unchanged', async () => {
    const [alice, pat] = await balances()
    const ctx = await reserved('30')
    const successes = ctx.candidate.stats.pendingSuccesses
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 1), data: Buffer.from('paid') })
    expect(await settle(ctx, { kind: 'fulfill', raw: fulfill }, core)).toBe(fulfill)
    expect(await balances()).toEqual([String(BigInt(alice!) - 30n), String(BigInt(pat!) + 30n)])
    expect(ctx.candidate.stats.pendingSuccesses).toBe(successes + 1)
  })

  it('a reject from the next hop refunds the sender and goes back unchanged', async () => {
    const before = await balances()
    const ctx = await reserved('20')
    const reject = serializeIlpReject({ code: 'F99', triggeredBy: 'test.pat', message: 'no thanks', data: Buffer.alloc(0) })
    expect(await settle(ctx, { kind: 'reject', raw: reject, code: 'F99' }, core)).toBe(reject)
    expect(await balances()).toEqual(before)
  })

  it('a failure at the next hop refunds the sender with the farm’s own reject, and counts against the route', async () => {
    const before = await balances()
    const ctx = await reserved('20')
    const failures = ctx.candidate.stats.pendingFailures
    const reply = await settle(ctx, { kind: 'failed', rejection: new IlpRejection('T01', 'no valid answer from the next hop') }, core)
    expect(deserializeIlpReject(reply)).toMatchObject({ code: 'T01', triggeredBy: 'test.farm', message: 'no valid answer from the next hop' })
    expect(await balances()).toEqual(before)
    expect(ctx.candidate.stats.pendingFailures).toBe(failures + 1)
  })

  it('a fulfill for a packet already refunded (swept after its expiry) is R00: the sender has its money back', async () => {
    const before = await balances()
    const ctx = await reserved('10')
    await core.ledger.reject('alice', ctx.packetId, 'pat') // the sweeper's refund, first
    const fulfill = serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 1), data: Buffer.alloc(0) })
    const reply = await settle(ctx, { kind: 'fulfill', raw: fulfill }, core)
    expect(deserializeIlpReject(reply)).toMatchObject({ code: 'R00', triggeredBy: 'test.farm', message: 'packet expired before it settled' })
    expect(await balances()).toEqual(before)
  })

  it('what an answer says about the next hop', () => {
    const failed = (code: 'T00' | 'T01' | 'T04' | 'R00' | 'F05' | 'F02') => hopOutcome({ kind: 'failed', rejection: new IlpRejection(code, '') })
    const rejected = (code: string) => hopOutcome({ kind: 'reject', raw: Buffer.alloc(0), code })
    expect(hopOutcome({ kind: 'fulfill', raw: Buffer.alloc(0) })).toBe('success')
    expect([failed('T01'), failed('T00'), rejected('T01'), rejected('T02')]).toEqual(Array(4).fill('transient-failure'))
    expect([failed('R00'), failed('F05'), rejected('R00')]).toEqual(Array(3).fill('failure'))
    // the hop's own T00 or F05, and the farm's own T04 or F02, are not the hop's fault
    expect([rejected('T00'), rejected('F05'), failed('T04'), failed('F02'), rejected('F99')]).toEqual(Array(5).fill('neutral'))
  })
})
