import { type Connection, createConnection, type Server } from 'ilp-protocol-stream'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, balanceOf, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startStreamReceiver } from '../helpers/stream.js'
import { createPlugin, freePort, type TestPlugin } from '../helpers/plugin-http.js'
import 'ilp-farm-client/stream-compat'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * A real STREAM payment (ilp-protocol-stream over ilp-plugin-http) from a USD
 * account to an EUR account through the farm: STREAM discovers the rate with
 * its test packets (the receiver's rejects carry their data through the
 * farm), learns the packet limit from F08, and every fulfilled packet
 * arrives converted at exactly USD→EUR = 1/1.08 × (1 − 0.002) = 499/540,
 * rounded down.
 */

const NUM = 499n
const DEN = 540n

let redis: TestRedis
let farm: TestFarm
const ports = { payer: 0, payee: 0 }
const plugins: TestPlugin[] = []
let server: Server | undefined
let connection: Connection | undefined

beforeAll(async () => {
  redis = await startTestRedis()
  ports.payer = await freePort()
  ports.payee = await freePort()
  const outgoing = (id: 'payer' | 'payee') => ({ url: `http://127.0.0.1:${ports[id]}/`, token: `farm-to-${id}` })
  farm = await startTestFarm(
    redis.url,
    [
      account('payer', { assetCode: 'USD', assetScale: 6, minBalance: '-2000000', maxPacketAmount: '100000', outgoing: outgoing('payer') }),
      account('payee', { assetCode: 'EUR', assetScale: 6, outgoing: outgoing('payee') }),
    ],
    { rates: { prices: { USD: '1', EUR: '1.08' }, spread: '0.002' } },
  )
})

afterAll(async () => {
  await connection?.destroy().catch(() => undefined)
  await server?.close().catch(() => undefined)
  await farm?.close()
  await Promise.allSettled(plugins.map((p) => p.close()))
  await redis?.close()
})

describe('STREAM across currencies', () => {
  it('pays 1,000,000 micro-USD to an EUR account; every packet converted exactly, balances exact', async () => {
    const plugin = (id: 'payer' | 'payee') => {
      const p = createPlugin({ port: ports[id], farmUrl: farm.url, accountId: id, outgoingToken: `${id}-token`, incomingToken: `farm-to-${id}` })
      plugins.push(p)
      return p
    }
    const payer = plugin('payer')
    const payee = plugin('payee')
    const receiver = await startStreamReceiver(payee.plugin)
    server = receiver.server
    const { accepted, destinationAccount, sharedSecret } = receiver
    connection = await createConnection({ plugin: payer.plugin, destinationAccount, sharedSecret })
    const stream = connection.createStream()
    await stream.sendTotal(1_000_000, { timeout: 15_000 })
    expect(stream.totalSent).toBe('1000000')

    await accepted
    await server.close()
    await connection.end()

    const paid = payer.sent.filter((p) => p.result === 'fulfill')
    expect(paid.length).toBeGreaterThanOrEqual(10) // the 100000 limit, learnt from F08
    expect(paid.reduce((sum, p) => sum + BigInt(p.amount), 0n)).toBe(1_000_000n)
    const converted = paid.reduce((sum, p) => sum + (BigInt(p.amount) * NUM) / DEN, 0n)
    expect(receiver.received()).toBe(converted)
    // about 924,074 micro-EUR; each packet loses less than one unit to rounding
    expect(converted).toBeLessThanOrEqual((1_000_000n * NUM) / DEN)
    expect(converted).toBeGreaterThan((1_000_000n * NUM) / DEN - BigInt(paid.length))

    expect(await balanceOf(farm.url, 'payer')).toBe('-1000000')
    expect(await balanceOf(farm.url, 'payee')).toBe(receiver.received().toString())
    expect((await adminGet<unknown[]>(farm.url, '/admin/hotset')).json).toEqual([])
  })
})
