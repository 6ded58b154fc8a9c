import { randomInt } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** The Lua decimal-string arithmetic, run inside a real Redis, against BigInt. */
const lib = readFileSync(new URL('../../lua/lib/bigint.lua', import.meta.url), 'utf8')
const harness = `${lib}
local out = {}
for i = 1, #ARGV, 2 do
  local a, b = ARGV[i], ARGV[i + 1]
  out[#out + 1] = big_add(a, b)
  out[#out + 1] = big_sub(a, b)
  out[#out + 1] = tostring(big_cmp(a, b))
  out[#out + 1] = big_min(a, b)
end
return out`

let redis: TestRedis
beforeAll(async () => {
  redis = await startTestRedis()
})
afterAll(async () => {
  await redis?.close()
})

function randomDigits(n: number): string {
  let s = String(randomInt(1, 10))
  while (s.length < n) s += String(randomInt(0, 10))
  return s
}

const EDGES = [
  '0', '1', '-1', '9999999', '10000000', '-10000000',
  '999999999999999', '1000000000000000', '-999999999999999', '-1000000000000000',
  '9007199254740991', '9007199254740992', '9007199254740993', '-9007199254740993',
  '9223372036854775807', '9223372036854775808', '-9223372036854775808',
  '18446744073709551615', '18446744073709551616', '-18446744073709551615',
  '340282366920938463463374607431768211455',
]

async function check(pairs: Array<[string, string]>): Promise<void> {
  const result = (await redis.client.eval(harness, 0, ...pairs.flat())) as string[]
  pairs.forEach(([a, b], i) => {
    const [sum, diff, cmp, min] = result.slice(i * 4, i * 4 + 4)
    const x = BigInt(a)
    const y = BigInt(b)
    expect({ a, b, sum, diff, cmp, min }).toEqual({
      a,
      b,
      sum: (x + y).toString(),
      diff: (x - y).toString(),
      cmp: String(x < y ? -1 : x > y ? 1 : 0),
      min: (x < y ? x : y).toString(),
    })
  })
}

describe('lua/lib/bigint.lua', () => {
  it('is exact on every pair of edge values (2^53, 2^63, 2^64 and limb boundaries)', async () => {
    const pairs: Array<[string, string]> = []
    for (const a of EDGES) for (const b of EDGES) pairs.push([a, b])
    await check(pairs)
  })

  it('is exact on random values of 1 to 40 digits, either sign', async () => {
    const pairs: Array<[string, string]> = []
    for (let i = 0; i < 2000; i++) {
      const a = randomDigits(randomInt(1, 41))
      const b = randomDigits(randomInt(1, 41))
      pairs.push([randomInt(2) ? a : `-${a}`, randomInt(2) ? b : `-${b}`])
    }
    await check(pairs)
  })
})
