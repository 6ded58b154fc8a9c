import { Reader } from 'oer-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { IlpRejection } from '../../../src/packet/reject.js'
import { outgoingAmount, route } from '../../../src/packet/steps/route.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, arrived, startCore, type TestCore } from './core.js'

let redis: TestRedis
let core: TestCore
const url = 'http://127.0.0.1:9/ilp' // never called: routing only reads it

beforeAll(async () => {
  redis = await startTestRedis()
  core = await startCore(redis.url, [
    accountInput('alice'),
    accountInput('bob', { outgoing: { url }, maxPacketAmount: '500' }),
    accountInput('cent', { outgoing: { url }, assetScale: 2 }),
    accountInput('eve', { outgoing: { url }, assetCode: 'EUR' }),
    accountInput('olga'),
    accountInput('pat', { relation: 'peer', outgoing: { url }, routes: ['test.pat'] }),
  ])
})
afterAll(async () => {
  await core?.close()
  await redis?.close()
})

const prepare = (destination: string, amount = '100') => ({
  amount,
  destination,
  executionCondition: Buffer.alloc(32, 1),
  expiresAt: new Date(Date.now() + 10_000),
  data: Buffer.alloc(0),
})

async function rejection(fn: () => unknown): Promise<IlpRejection> {
  try {
    await fn()
  } catch (err) {
    if (err instanceof IlpRejection) return err
    throw err
  }
  throw new Error('no rejection')
}

describe('route step', () => {
  it('a child by its address under the farm', async () => {
    const { hop, candidate } = await route(arrived(core.account('alice'), prepare('test.farm.bob.wallet')), core)
    expect(hop.account.id).toBe('bob')
    expect(hop.rpcUrl).toBeUndefined()
    expect(candidate.accountId).toBe('bob')
  })

  it('a peer by the prefixes of its routes', async () => {
    const { hop } = await route(arrived(core.account('alice'), prepare('test.pat.shop')), core)
    expect(hop.account.id).toBe('pat')
  })

  it('peer.* is never forwarded: F02', async () => {
    const err = await rejection(() => route(arrived(core.account('alice'), prepare('peer.anything')), core))
    expect([err.code, err.message]).toEqual(['F02', 'no route to peer.anything: peer.* is never forwarded'])
  })

  it('an address with no route is F02', async () => {
    const err = await rejection(() => route(arrived(core.account('alice'), prepare('test.elsewhere.x')), core))
    expect([err.code, err.message]).toEqual(['F02', 'no route to test.elsewhere.x'])
  })

  it('a route that leads only back to the sender is F02', async () => {
    const err = await rejection(() => route(arrived(core.account('pat'), prepare('test.pat.shop')), core))
    expect([err.code, err.message]).toEqual(['F02', 'no route to test.pat.shop: it leads back to the sender'])
  })

  it('a child that cannot be reached (no outgoing URL, no RPC URL) is T01', async () => {
    const err = await rejection(() => route(arrived(core.account('alice'), prepare('test.farm.olga')), core))
    expect([err.code, err.message]).toEqual(['T01', 'receiver offline: olga has no RPC URL registered and no outgoing URL; retry once it is reachable'])
  })
})

describe('outgoing amount', () => {
  it('the same asset passes the amount as it came, any UInt64', () => {
    const ctx = arrived(core.account('alice'), prepare('test.pat.shop', '18446744073709551615'))
    expect(outgoingAmount(ctx, core.account('pat'), core)).toBe('18446744073709551615')
  })

  it('a smaller scale is rounded down', () => {
    expect(outgoingAmount(arrived(core.account('alice'), prepare('test.farm.cent', '1019999')), core.account('cent'), core)).toBe('101')
  })

  it('an amount that rounds to zero at the next hop is R01', async () => {
    const err = await rejection(() => outgoingAmount(arrived(core.account('alice'), prepare('test.farm.cent', '9999')), core.account('cent'), core))
    expect([err.code, err.message]).toEqual(['R01', 'insufficient source amount: the converted amount rounds to zero'])
  })

  it('above the next hop’s maxPacketAmount is F08, its data the amount and the maximum in incoming units', async () => {
    const err = await rejection(() => outgoingAmount(arrived(core.account('alice'), prepare('test.farm.bob', '501')), core.account('bob'), core))
    expect([err.code, err.message]).toEqual(['F08', 'packet amount exceeds the next hop maximum'])
    const data = new Reader(err.data)
    expect([data.readUInt64(), data.readUInt64()]).toEqual(['501', '500'])
  })

  it('no rate between the two assets is F02', async () => {
    const err = await rejection(() => outgoingAmount(arrived(core.account('alice'), prepare('test.farm.eve')), core.account('eve'), core))
    expect([err.code, err.message]).toEqual(['F02', 'no exchange rate from USD to EUR'])
  })
})
