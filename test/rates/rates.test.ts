import { describe, expect, it } from 'vitest'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import type { AccountConfig, AccountConfigInput, FarmConfig } from '../../src/config/schema.js'
import {
  convertBackDown,
  convertDown,
  convertForHop,
  makeRate,
  parseDecimal,
  type Rate,
  Rates,
  rateToString,
  sourceAmountFor,
} from '../../src/rates/rates.js'
import { UINT64_MAX } from '../../src/util/amount.js'

/** Conversion arithmetic and the config key `rates`: exact, always rounded in the farm's favour. */

const acct = (id: string, assetCode: string, assetScale: number, extra: Partial<AccountConfigInput> = {}): AccountConfigInput => ({
  id,
  relation: 'peer',
  assetCode,
  assetScale,
  ...extra,
})

function configWith(accounts: AccountConfigInput[], rates?: unknown): FarmConfig {
  return parseConfig({ ilpAddress: 'test.farm', accounts, ...(rates === undefined ? {} : { rates }) }, 'test', {})
}

const PRICES = { USD: '1', EUR: '1.08', XRP: '0.5' }

function setup(spread = '0.002') {
  const config = configWith(
    [
      acct('usd2', 'USD', 2),
      acct('usd6', 'USD', 6),
      acct('usd9', 'USD', 9),
      acct('usd0', 'USD', 0),
      acct('eur6', 'EUR', 6),
      acct('eur2', 'EUR', 2),
      acct('eur0', 'EUR', 0),
      acct('xrp6', 'XRP', 6, { maxPacketAmount: '1000000' }),
      acct('xrp9', 'XRP', 9),
      acct('jpy0', 'JPY', 0),
    ],
    { prices: PRICES, spread },
  )
  const rates = new Rates(config)
  const a = new Map<string, AccountConfig>(config.accounts.map((x) => [x.id, x]))
  const rate = (from: string, to: string): Rate | undefined => rates.between(a.get(from)!, a.get(to)!)
  return { rates, a, rate }
}

describe('rates between accounts', () => {
  it('parses plain decimals exactly', () => {
    expect(parseDecimal('1.08')).toEqual({ num: 108n, den: 100n })
    expect(parseDecimal('0.002')).toEqual({ num: 2n, den: 1000n })
    expect(parseDecimal('42')).toEqual({ num: 42n, den: 1n })
    expect(() => parseDecimal('1e3')).toThrow()
    expect(() => parseDecimal('-1')).toThrow()
  })

  it('same code and scale: identity, whatever the spread', () => {
    const { rate } = setup()
    expect(rate('usd6', 'usd6')?.identity).toBe(true)
  })

  it('same code, other scale: exact powers of ten, no spread', () => {
    const { rate } = setup()
    expect(rate('usd2', 'usd6')).toEqual({ num: 10000n, den: 1n, identity: false })
    expect(convertDown(123n, rate('usd2', 'usd6')!)).toBe(1230000n)
    // scaling down rounds down: 1.999999 USD at scale 6 is 1.99 at scale 2
    expect(convertDown(1999999n, rate('usd6', 'usd2')!)).toBe(199n)
    expect(convertDown(9999n, rate('usd6', 'usd2')!)).toBe(0n)
  })

  it('different codes: price ratio × 10^(scale difference) × (1 − spread), reduced', () => {
    const { rate } = setup()
    // 1/1.08 × 10^4 × 0.998 = 249500/27
    expect(rate('usd2', 'eur6')).toEqual({ num: 249500n, den: 27n, identity: false })
    // 1/0.5 × 10^4 × 0.998 = 19960
    expect(rate('usd2', 'xrp6')).toEqual({ num: 19960n, den: 1n, identity: false })
    expect(rateToString(rate('usd2', 'xrp6')!)).toBe('19960')
    expect(rateToString(rate('usd2', 'eur6')!)).toBe('9240.74074074074074074') // 18 decimals, rounded down, trailing zero dropped
    // scale down: 1/1.08 × 10^-7 × 0.998
    expect(rate('usd9', 'eur2')).toEqual({ num: 499n, den: 5400000000n, identity: false })
  })

  it('converts with the spread and rounds down, never up', () => {
    const { rate } = setup()
    const r = rate('usd2', 'eur6')!
    expect(convertDown(1n, r)).toBe(9240n) // 9240.74…
    expect(convertDown(27n, r)).toBe(249500n) // exact
    expect(convertDown(100n, r)).toBe(924074n) // 924074.07…
    expect(convertDown(12345n, r)).toBe(114076944n) // 114076944.44…
    // the farm's favour, whatever the amount: out × den ≤ in × num
    for (let i = 0n; i < 2000n; i += 7n) {
      const out = convertDown(i, r)
      expect(out * r.den <= i * r.num).toBe(true)
      expect((out + 1n) * r.den > i * r.num).toBe(true)
    }
  })

  it('spread 0 between different codes: the plain price ratio', () => {
    const { rate } = setup('0')
    expect(rate('usd2', 'xrp6')).toEqual({ num: 20000n, den: 1n, identity: false })
  })

  it('huge UInt64 amounts convert exactly (no float anywhere)', () => {
    const { rate } = setup()
    // XRP scale 9 → USD scale 0: 0.5 × 10^-9 × 0.998
    expect(convertDown(UINT64_MAX, rate('xrp9', 'usd0')!)).toBe(9204925292n)
    // EUR scale 0 → USD scale 4: 1.08 × 0.998 × 10^4, a product close to UInt64 max
    const r = makeRate(108n * 998n * 10000n, 100n * 1000n) // 1.08 × 0.998 × 10^4 = 10778.4
    expect(r).toEqual({ num: 53892n, den: 5n, identity: false })
    expect(convertDown(1708000000000000n, r)).toBe(18409507200000000000n)
    expect(convertDown(1708000000000000n, rate('eur0', 'usd2')!)).toBe(184095072000000000n)
  })

  it('no rate between codes without a price: F02', () => {
    const { rate, a } = setup()
    expect(rate('usd2', 'jpy0')).toBeUndefined()
    expect(rate('jpy0', 'usd2')).toBeUndefined()
    const res = convertForHop(100n, undefined, a.get('usd2')!, a.get('jpy0')!)
    expect(res).toEqual({ ok: false, failure: { code: 'F02', message: 'no exchange rate from USD to JPY' } })
  })

  it('R01 when a non-zero amount converts to zero; zero stays zero', () => {
    const { rate, a } = setup()
    const r = rate('usd9', 'eur2')!
    expect(convertForHop(1000n, r, a.get('usd9')!, a.get('eur2')!)).toMatchObject({ ok: false, failure: { code: 'R01' } })
    expect(convertForHop(0n, r, a.get('usd9')!, a.get('eur2')!)).toEqual({ ok: true, amount: 0n })
    // 10^9 nano-USD = 1 USD → 0.924… EUR → 92 cents
    expect(convertForHop(1000000000n, r, a.get('usd9')!, a.get('eur2')!)).toEqual({ ok: true, amount: 92n })
  })

  it("F08 against the next hop's limit on the converted amount, maximum converted back rounded down", () => {
    const { rate, a } = setup()
    const r = rate('usd2', 'xrp6')! // 19960; xrp6 takes at most 1000000
    expect(convertForHop(50n, r, a.get('usd2')!, a.get('xrp6')!)).toEqual({ ok: true, amount: 998000n })
    expect(convertForHop(51n, r, a.get('usd2')!, a.get('xrp6')!)).toEqual({
      ok: false,
      failure: { code: 'F08', message: 'packet amount exceeds the next hop maximum', received: 51n, maximum: 50n },
    })
    // beyond UInt64 on the outgoing side is F08 too, the maximum capped at UInt64
    const res = convertForHop(UINT64_MAX, rate('usd2', 'usd6')!, a.get('usd2')!, a.get('usd6')!)
    expect(res).toEqual({
      ok: false,
      failure: { code: 'F08', message: 'packet amount exceeds the next hop maximum', received: UINT64_MAX, maximum: UINT64_MAX / 10000n },
    })
  })

  it('source amount for a destination amount: the smallest that reaches it', () => {
    const { rate } = setup()
    for (const [from, to] of [
      ['usd2', 'eur6'],
      ['usd9', 'eur2'],
      ['usd6', 'usd2'],
      ['xrp9', 'usd0'],
    ] as const) {
      const r = rate(from, to)!
      for (const d of [0n, 1n, 2n, 99n, 1000n, 114076944n, 123456789012n]) {
        const s = sourceAmountFor(d, r)
        expect(convertDown(s, r) >= d).toBe(true)
        if (s > 0n) expect(convertDown(s - 1n, r) < d).toBe(true)
      }
    }
    expect(sourceAmountFor(114076944n, rate('usd2', 'eur6')!)).toBe(12345n)
    expect(convertBackDown(1000000n, rate('usd2', 'xrp6')!)).toBe(50n)
  })
})

describe('config key rates', () => {
  const accounts = [acct('a', 'USD', 2)]
  const problems = (rates: unknown): string[] => {
    try {
      configWith(accounts, rates)
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
    return []
  }

  it('defaults to no prices and no spread', () => {
    expect(configWith(accounts).rates).toEqual({ prices: {}, spread: '0' })
  })

  it('reports bad prices and spreads with their field paths', () => {
    expect(problems({ prices: { EUR: 1.08 } })).toEqual(['rates.prices.EUR: must be a decimal string in quotes such as "1.08"'])
    expect(problems({ prices: { EUR: '-1' } })).toEqual(['rates.prices.EUR: must be a decimal string such as "1.08" (no sign or exponent)'])
    expect(problems({ prices: { EUR: '0.000' } })).toEqual(['rates.prices.EUR: must be greater than zero'])
    expect(problems({ spread: '1' })).toEqual(['rates.spread: must be below 1'])
    expect(problems({ spread: '2e-3' })).toEqual(['rates.spread: must be a decimal string such as "0.002" (0.2%)'])
    expect(problems({ spred: '0.1' })).toEqual(['rates.spred: unknown key'])
    expect(problems({ prices: { USD: '1', EUR: '1.08' }, spread: '0.002' })).toEqual([])
  })
})
