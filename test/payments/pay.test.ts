import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Paying from the farm (ilp_pay, @interledger/pay run by the farm for the
 * account) and the payment histories (ilp_getPayments), against a real farm:
 * the payee is another account's payment pointer on the same farm, received
 * by the farm-hosted receiver while its user is offline. Real Redis, real
 * sockets. A second farm keeps the default SPSP policy: no private address,
 * no plain http.
 */
let redis: TestRedis
let farm: TestFarm
let strict: TestFarm

interface RpcAnswer<T = Record<string, unknown>> {
  result?: T
  error?: { code: number; message: string; data?: Record<string, unknown> }
}

async function call<T = Record<string, unknown>>(target: TestFarm, token: string, method: string, params: unknown): Promise<RpcAnswer<T>> {
  const res = await request(`${target.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  return (await res.body.json()) as RpcAnswer<T>
}

const pointerOf = (target: TestFarm, id: string) => `${target.url}/accounts/${id}/spsp`

beforeAll(async () => {
  redis = await startTestRedis()
  const accounts = [account('alice', { minBalance: '-1000000000' }), account('bob'), account('carol', { minBalance: '-3000' })]
  farm = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: 'pay:' }, payments: { allowPrivateSpsp: true, allowHttpSpsp: true } })
  strict = await startTestFarm(redis.url, accounts, { redis: { keyPrefix: 'strict:' } })
})

afterAll(async () => {
  await farm?.close()
  await strict?.close()
  await redis?.close()
})

describe('ilp_pay', () => {
  it('pays a payment pointer from the calling account: the sender is debited, the receiver credited, exactly what the answer says', async () => {
    const { result, error } = await call(farm, 'alice-token', 'ilp_pay', { paymentPointer: pointerOf(farm, 'bob'), sourceAmount: '500000' })
    expect(error).toBeUndefined()
    expect(result).toMatchObject({ direction: 'outgoing', state: 'completed', amount: '500000', delivered: '500000', counterpart: pointerOf(farm, 'bob'), assetCode: 'USD', assetScale: 6 })
    expect(result!.destinationAssetCode).toBe('USD')
    expect(await balanceOf(farm.url, 'alice')).toBe('-500000')
    expect(await balanceOf(farm.url, 'bob')).toBe('500000')
  })

  it('wait: false answers at once with the running payment; ilp_getPayment follows it to its end', async () => {
    const started = await call(farm, 'alice-token', 'ilp_pay', { paymentPointer: pointerOf(farm, 'bob'), sourceAmount: '1000', wait: false })
    expect(started.result).toMatchObject({ state: 'running', amount: '0' })
    const id = started.result!.id as string
    let seen: Record<string, unknown> | undefined
    for (let i = 0; i < 100 && seen?.state !== 'completed'; i++) {
      seen = (await call(farm, 'alice-token', 'ilp_getPayment', { id })).result
      if (seen?.state !== 'completed') await new Promise((r) => setTimeout(r, 50))
    }
    expect(seen).toMatchObject({ id, state: 'completed', amount: '1000', delivered: '1000' })
    // another account cannot read it
    expect((await call(farm, 'bob-token', 'ilp_getPayment', { id })).error).toMatchObject({ code: 3, data: { reason: 'not-found' } })
  })

  it('a payment beyond the sender’s credit fails with its reason, and what it sent is exactly what moved', async () => {
    const before = BigInt(await balanceOf(farm.url, 'bob'))
    const { result } = await call(farm, 'carol-token', 'ilp_pay', { paymentPointer: pointerOf(farm, 'bob'), sourceAmount: '10000' })
    expect(result!.state).toBe('failed')
    // the sender's own error names no cause: the farm's reject it met is surfaced with it
    expect(String(result!.error)).toMatch(/last reject: T04 from test\.farm: /)
    const sent = BigInt(result!.amount as string)
    expect(sent).toBe(0n) // every packet asked more than carol's credit
    expect(await balanceOf(farm.url, 'carol')).toBe((-sent).toString())
    expect(BigInt(await balanceOf(farm.url, 'bob'))).toBe(before + sent)
  })

  it('refuses a pointer it must not fetch, with error 3 and nothing sent', async () => {
    for (const paymentPointer of [pointerOf(strict, 'bob'), 'https://127.0.0.1:9/x', 'https://[::1]:9/x', '$localhost/x', 'ftp://example.com/x', 'not a pointer']) {
      const { error } = await call(strict, 'alice-token', 'ilp_pay', { paymentPointer, sourceAmount: '100' })
      expect(error, paymentPointer).toMatchObject({ code: 3, data: { reason: 'bad-pointer' } })
    }
    expect((await call(strict, 'alice-token', 'ilp_pay', { paymentPointer: '$example.com', sourceAmount: '0' })).error?.code).toBe(-32602)
    expect(await balanceOf(strict.url, 'alice')).toBe('0')
    expect((await call<{ payments: unknown[] }>(strict, 'alice-token', 'ilp_getPayments', {})).result!.payments).toEqual([])
  })
})

describe('ilp_getPayments', () => {
  it('lists both sides, newest first, in pages: the sender’s outgoing payments and the receiver’s incoming ones', async () => {
    const alice = await call<{ payments: Array<Record<string, unknown>>; cursor?: string }>(farm, 'alice-token', 'ilp_getPayments', {})
    expect(alice.result!.payments.map((p) => [p.direction, p.state, p.amount])).toEqual([
      ['outgoing', 'completed', '1000'],
      ['outgoing', 'completed', '500000'],
    ])
    expect(alice.result!.cursor).toBeUndefined()
    const bob = await call<{ payments: Array<Record<string, unknown>> }>(farm, 'bob-token', 'ilp_getPayments', {})
    const incoming = bob.result!.payments
    expect(incoming.every((p) => p.direction === 'incoming' && p.state === 'received')).toBe(true)
    // one entry per STREAM connection that was credited, newest first (carol's payment moved nothing)
    expect(incoming.map((p) => [p.counterpart, p.amount])).toEqual([
      [`${FARM_ADDRESS}.alice`, '1000'],
      [`${FARM_ADDRESS}.alice`, '500000'],
    ])
    expect(incoming.reduce((sum, p) => sum + BigInt(p.amount as string), 0n)).toBe(BigInt(await balanceOf(farm.url, 'bob')))
    // pages of one
    const first = await call<{ payments: Array<Record<string, unknown>>; cursor?: string }>(farm, 'bob-token', 'ilp_getPayments', { limit: 1 })
    const second = await call<{ payments: Array<Record<string, unknown>>; cursor?: string }>(farm, 'bob-token', 'ilp_getPayments', { limit: 1, cursor: first.result!.cursor })
    expect([first.result!.payments[0]!.id, second.result!.payments[0]!.id]).toEqual(incoming.slice(0, 2).map((p) => p.id))
    expect((await call(farm, 'bob-token', 'ilp_getPayments', { cursor: 'x' })).error?.code).toBe(-32602)
  })
})
