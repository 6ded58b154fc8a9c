import type { IlpReject } from 'ilp-packet'
import { Reader } from 'oer-utils'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, ADMIN_TOKEN, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Cross-currency packets and quotes through a real farm (one worker, real
 * Redis, next hops real HTTP servers): the forwarded amount is exactly what
 * the rate and the spread say, rounded down; both balances move by their own
 * side's amount.
 *
 * Prices: USD 1, EUR 1.08, XRP 0.5; spread 0.2%. From alice (USD, scale 2):
 *   to EUR scale 6: × 1/1.08 × 10^4 × 0.998 = × 249500/27 (9240.74…)
 *   to XRP scale 6: × 1/0.5 × 10^4 × 0.998 = × 19960
 *   to USD scale 6: × 10^4 (same code: no spread)
 */

let redis: TestRedis
let farm: TestFarm
let hop: TestPeer

beforeAll(async () => {
  redis = await startTestRedis()
  hop = await startTestPeer(fulfillKnown)
  const peer = (id: string, assetCode: string, assetScale: number, routes: string[], extra: Record<string, unknown> = {}) =>
    account(id, { relation: 'peer', assetCode, assetScale, outgoing: { url: hop.url }, routes, ...extra })
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { assetCode: 'USD', assetScale: 2, minBalance: '-100000000' }),
      account('whale', { assetCode: 'USD', assetScale: 9, minBalance: '-100000000000000' }),
      peer('eur', 'EUR', 6, ['test.eur']),
      peer('eur2', 'EUR', 2, ['test.eur2']),
      peer('xrp', 'XRP', 6, ['test.xrp'], { maxPacketAmount: '1000000' }),
      peer('usd6', 'USD', 6, ['test.usd6']),
      peer('jpy', 'JPY', 0, ['test.jpy']),
      peer('tight', 'EUR', 6, ['test.tight'], { maxBalance: '100000' }),
      peer('eurA', 'EUR', 6, ['test.multi'], { maxBalance: '1000' }),
      peer('eurB', 'EUR', 6, ['test.multi']),
    ],
    { rates: { prices: { USD: '1', EUR: '1.08', XRP: '0.5' }, spread: '0.002' } },
  )
})

afterAll(async () => {
  await farm?.close()
  await hop?.close()
  await redis?.close()
})

async function pay(from: string, destination: string, amount: string) {
  const res = await sendIlp(farm.url, from, prepareTo(destination, amount, knownCondition()))
  expect(res.status).toBe(200)
  return res
}

function rejectOf(res: { packet?: { type: number; data: unknown } }): IlpReject {
  expect(res.packet?.type).toBe(14)
  return res.packet!.data as IlpReject
}

async function postQuote(body: unknown, token: string | null = ADMIN_TOKEN): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (token !== null) headers.authorization = `Bearer ${token}`
  const res = await request(`${farm.url}/admin/quote`, { method: 'POST', headers, body: JSON.stringify(body) })
  return { status: res.statusCode, json: (await res.body.json()) as Record<string, unknown> }
}

describe('cross-currency packets', () => {
  it('USD scale 2 → EUR scale 6: exactly the converted amount, rounded down, balances exact', async () => {
    let alice = 0n
    let eur = 0n
    // [incoming cents, expected micro-EUR]: 27 converts exactly, the others round down
    for (const [amount, expected] of [
      ['27', '249500'],
      ['1', '9240'],
      ['100', '924074'],
      ['12345', '114076944'],
    ] as const) {
      const res = await pay('alice', 'test.eur.bob', amount)
      expect(res.packet?.type).toBe(13)
      expect(hop.received.at(-1)!.prepare.amount).toBe(expected)
      alice -= BigInt(amount)
      eur += BigInt(expected)
      expect(await balanceOf(farm.url, 'alice')).toBe(alice.toString())
      expect(await balanceOf(farm.url, 'eur')).toBe(eur.toString())
    }
  })

  it('same code, other scale: no spread; scale down rounds down', async () => {
    const before = BigInt(await balanceOf(farm.url, 'usd6'))
    expect((await pay('alice', 'test.usd6.x', '123')).packet?.type).toBe(13)
    expect(hop.received.at(-1)!.prepare.amount).toBe('1230000')
    expect(await balanceOf(farm.url, 'usd6')).toBe((before + 1230000n).toString())

    // whale (USD scale 9) → EUR scale 2: 1 USD = 92.4… euro cents → 92
    const whale = BigInt(await balanceOf(farm.url, 'whale'))
    const res = await pay('whale', 'test.eur2.x', '1000000000')
    expect(res.packet?.type).toBe(13)
    expect(hop.received.at(-1)!.prepare.amount).toBe('92')
    expect(await balanceOf(farm.url, 'whale')).toBe((whale - 1000000000n).toString())
    expect(await balanceOf(farm.url, 'eur2')).toBe('92')
  })

  it('R01 when the converted amount rounds to zero; nothing moves', async () => {
    const seen = hop.received.length
    const whale = await balanceOf(farm.url, 'whale')
    const reject = rejectOf(await pay('whale', 'test.eur2.x', '1000'))
    expect(reject.code).toBe('R01')
    expect(reject.triggeredBy).toBe('test.farm')
    expect(hop.received.length).toBe(seen)
    expect(await balanceOf(farm.url, 'whale')).toBe(whale)
  })

  it('F02 between codes without a rate', async () => {
    const reject = rejectOf(await pay('alice', 'test.jpy.x', '100'))
    expect(reject.code).toBe('F02')
    expect(reject.message).toBe('no exchange rate from USD to JPY')
  })

  it("F08 against the next hop's limit on the converted amount, reported in incoming units", async () => {
    // 50 cents → 998000 micro-XRP: under the 1000000 limit
    const ok = await pay('alice', 'test.xrp.x', '50')
    expect(ok.packet?.type).toBe(13)
    expect(hop.received.at(-1)!.prepare.amount).toBe('998000')

    const seen = hop.received.length
    const reject = rejectOf(await pay('alice', 'test.xrp.x', '51'))
    expect(reject.code).toBe('F08')
    const reader = new Reader(reject.data)
    expect(reader.readUInt64()).toBe('51') // received: the incoming amount
    expect(reader.readUInt64()).toBe('50') // maximum: 1000000 / 19960 = 50.1 → 50 cents
    expect(hop.received.length).toBe(seen)
  })
})

describe('POST /admin/quote', () => {
  it('source amount → destination amount, next hop and rate; a packet of that amount delivers exactly it', async () => {
    const { status, json } = await postQuote({ from: 'alice', destination: 'test.eur.bob', sourceAmount: '12345' })
    expect(status).toBe(200)
    expect(json).toMatchObject({
      sourceAmount: '12345',
      destinationAmount: '114076944',
      nextHop: 'eur',
      prefix: 'test.eur',
      sourceAsset: { code: 'USD', scale: 2 },
      destinationAsset: { code: 'EUR', scale: 6 },
      rate: '9240.74074074074074074',
      rateFraction: { numerator: '249500', denominator: '27' },
      policy: 'success-rate',
      liquidity: { headroom: null, sufficient: true },
      maxPacketAmount: null,
    })
    await pay('alice', 'test.eur.bob', '12345')
    expect(hop.received.at(-1)!.prepare.amount).toBe(json.destinationAmount)
  })

  it('destination amount → the smallest source amount that reaches it; the packet arrives with at least that', async () => {
    for (const wanted of ['1000000', '114076944', '1', '9241']) {
      const { status, json } = await postQuote({ from: 'alice', destination: 'test.eur.bob', destinationAmount: wanted })
      expect(status).toBe(200)
      const source = json.sourceAmount as string
      expect(BigInt(json.destinationAmount as string)).toBeGreaterThanOrEqual(BigInt(wanted))
      await pay('alice', 'test.eur.bob', source)
      const arrived = BigInt(hop.received.at(-1)!.prepare.amount)
      expect(arrived).toBe(BigInt(json.destinationAmount as string))
      expect(arrived).toBeGreaterThanOrEqual(BigInt(wanted))
      // one unit less would not reach it
      const less = await postQuote({ from: 'alice', destination: 'test.eur.bob', sourceAmount: (BigInt(source) - 1n).toString() })
      expect(BigInt(less.json.destinationAmount as string)).toBeLessThan(BigInt(wanted))
    }
    const { json } = await postQuote({ from: 'alice', destination: 'test.eur.bob', destinationAmount: '114076944' })
    expect(json.sourceAmount).toBe('12345')
  })

  it("reports the packet limit in source units and the next hop's liquidity", async () => {
    const xrp = await postQuote({ from: 'alice', destination: 'test.xrp.x', sourceAmount: '100' })
    expect(xrp.json).toMatchObject({ destinationAmount: '1996000', nextHop: 'xrp', maxPacketAmount: '50' })

    // tight may receive 100000 more (maxBalance, balance 0): 10 cents = 924074 is more than that
    const tight = await postQuote({ from: 'alice', destination: 'test.tight.x', sourceAmount: '100' })
    expect(tight.status).toBe(200)
    expect(tight.json).toMatchObject({ nextHop: 'tight', destinationAmount: '924074', liquidity: { headroom: '100000', sufficient: false } })
    const fits = await postQuote({ from: 'alice', destination: 'test.tight.x', destinationAmount: '100000' })
    expect(fits.json).toMatchObject({ sourceAmount: '11', destinationAmount: '101648', liquidity: { sufficient: false } })
    const small = await postQuote({ from: 'alice', destination: 'test.tight.x', sourceAmount: '10' })
    expect(small.json).toMatchObject({ destinationAmount: '92407', liquidity: { headroom: '100000', sufficient: true } })
  })

  it('picks a candidate with enough liquidity when the other has none', async () => {
    // eurA may receive 1000 micro-EUR, eurB anything
    const big = await postQuote({ from: 'alice', destination: 'test.multi.x', destinationAmount: '5000' })
    expect(big.json).toMatchObject({ nextHop: 'eurB', liquidity: { headroom: null, sufficient: true } })
    const tiny = await postQuote({ from: 'alice', destination: 'test.multi.x', sourceAmount: '0' })
    expect(tiny.status).toBe(200)
    expect(tiny.json).toMatchObject({ sourceAmount: '0', destinationAmount: '0' })
  })

  it('422 with the code a packet would get: F02 no route or no rate, R01 rounds to zero', async () => {
    expect(await postQuote({ from: 'alice', destination: 'test.nowhere', sourceAmount: '1' })).toEqual({
      status: 422,
      json: { error: 'no route to test.nowhere', code: 'F02' },
    })
    expect(await postQuote({ from: 'alice', destination: 'test.jpy.x', sourceAmount: '1' })).toEqual({
      status: 422,
      json: { error: 'no exchange rate from USD to JPY', code: 'F02' },
    })
    expect(await postQuote({ from: 'eur', destination: 'test.eur.x', sourceAmount: '1' })).toEqual({
      status: 422,
      json: { error: 'no route to test.eur.x: it leads back to the sender', code: 'F02' },
    })
    expect(await postQuote({ from: 'whale', destination: 'test.eur2.x', sourceAmount: '1000' })).toEqual({
      status: 422,
      json: { error: 'insufficient source amount: the converted amount rounds to zero', code: 'R01' },
    })
    const huge = await postQuote({ from: 'alice', destination: 'test.usd6.x', destinationAmount: '18446744073709550000' })
    expect(huge.json).toMatchObject({ sourceAmount: '1844674407370955', destinationAmount: '18446744073709550000' })
    // UInt64 max itself cannot be reached from cents: the smallest source overshoots it
    const over = await postQuote({ from: 'alice', destination: 'test.usd6.x', destinationAmount: '18446744073709551615' })
    expect(over).toEqual({ status: 422, json: { error: 'the destination amount would exceed the largest ILP amount (UInt64)', code: 'F08' } })
    const tooBig = await postQuote({ from: 'whale', destination: 'test.usd6.x', destinationAmount: '18446744073709551615' })
    expect(tooBig).toMatchObject({ status: 422, json: { code: 'F08' } })
  })

  it('400 for bad input, 401 without the admin token', async () => {
    const bad = async (body: unknown) => {
      const res = await postQuote(body)
      expect(res.status).toBe(400)
      return res.json.error
    }
    expect(await bad({ from: 'nobody', destination: 'test.eur.x', sourceAmount: '1' })).toBe('from: unknown account "nobody"')
    expect(await bad({ destination: 'test.eur.x', sourceAmount: '1' })).toBe("from: is required (the sending account's id)")
    expect(await bad({ from: 'alice', destination: 'not an address', sourceAmount: '1' })).toBe(
      'destination: must be an ILP address such as "test.farm.bob" (RFC 15)',
    )
    expect(await bad({ from: 'alice', destination: 'test.eur.x' })).toBe('give exactly one of sourceAmount and destinationAmount')
    expect(await bad({ from: 'alice', destination: 'test.eur.x', sourceAmount: '1', destinationAmount: '1' })).toBe(
      'give exactly one of sourceAmount and destinationAmount',
    )
    for (const amount of [1, '-1', '1.5', '18446744073709551616', '01']) {
      expect(await bad({ from: 'alice', destination: 'test.eur.x', sourceAmount: amount })).toBe(
        'sourceAmount: must be a decimal string in quotes, a non-negative integer no larger than 18446744073709551615',
      )
    }
    expect(await bad([1, 2])).toMatch(/^body: must be a JSON object/)
    expect((await postQuote({ from: 'alice', destination: 'test.eur.x', sourceAmount: '1' }, null)).status).toBe(401)
  })
})
