import { type Connection, createConnection, type DataAndMoneyStream, type Server } from 'ilp-protocol-stream'
import { Reader } from 'oer-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startStreamReceiver } from '../helpers/stream.js'
import { createPlugin, freePort, type SentPacket, type TestPlugin } from '../helpers/plugin-http.js'
import 'ilp-farm-client/stream-compat'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * A real STREAM payment (ilp-protocol-stream over ilp-plugin-http) from one
 * child account to another through the farm: ILDCP on connect, rate probing,
 * F08 discovery of the packet limit, T04 on exhausted credit, and exact
 * balances in Redis afterwards.
 */

const SENDER_MAX_PACKET = '100000'

/** Farm accounts, each with the port its own ilp-plugin-http endpoint listens on. */
const ids = ['sender', 'receiver', 'poor', 'payee'] as const
type Id = (typeof ids)[number]
const ports = {} as Record<Id, number>
const outgoingToken = (id: Id) => `${id}-token` // what the plugin sends to the farm (test helper default)
const incomingToken = (id: Id) => `farm-to-${id}-token` // what the farm sends to the plugin

let redis: TestRedis
let farm: TestFarm
/** Everything opened by a payment, closed (again, harmlessly) in afterAll whatever happened. */
const plugins: TestPlugin[] = []
const servers: Server[] = []
const connections: Connection[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  for (const id of ids) ports[id] = await freePort()
  const outgoing = (id: Id) => ({ url: `http://127.0.0.1:${ports[id]}/`, token: incomingToken(id) })
  farm = await startTestFarm(redis.url, [
    account('sender', { minBalance: '-2000000', maxPacketAmount: SENDER_MAX_PACKET, outgoing: outgoing('sender') }),
    account('receiver', { outgoing: outgoing('receiver') }),
    account('poor', { minBalance: '-300000', maxPacketAmount: SENDER_MAX_PACKET, outgoing: outgoing('poor') }),
    account('payee', { outgoing: outgoing('payee') }),
  ])
})

afterAll(async () => {
  await Promise.allSettled(connections.map((c) => c.destroy()))
  await Promise.allSettled(servers.map((s) => s.close()))
  await farm?.close()
  await Promise.allSettled(plugins.map((p) => p.close()))
  await redis?.close()
})

interface Payment {
  /** What the receiver's STREAM side counted (money events), as a bigint. */
  received(): bigint
  sender: DataAndMoneyStream
  /** What the sender's plugin sent through the farm, and the answers. */
  packets: SentPacket[]
  connection: Connection
  server: Server
  /** Ends the payment: the connection (gracefully or not), the STREAM server, both plugins. */
  close(opts: { graceful: boolean }): Promise<void>
}

/** A STREAM server on `to`'s plugin and a connection to it from `from`'s plugin, with one money stream open. */
async function openPayment(from: Id, to: Id): Promise<Payment> {
  const plugin = (id: Id) => {
    const p = createPlugin({
      port: ports[id],
      farmUrl: farm.url,
      accountId: id,
      outgoingToken: outgoingToken(id),
      incomingToken: incomingToken(id),
    })
    plugins.push(p)
    return p
  }
  const senderPlugin = plugin(from)
  const receiverPlugin = plugin(to)

  const receiver = await startStreamReceiver(receiverPlugin.plugin)
  const { server, accepted, destinationAccount, sharedSecret } = receiver
  servers.push(server)
  expect(destinationAccount.startsWith(`${FARM_ADDRESS}.${to}.`)).toBe(true)

  const connection = await createConnection({ plugin: senderPlugin.plugin, destinationAccount, sharedSecret })
  connections.push(connection)
  expect(connection.sourceAccount).toBe(`${FARM_ADDRESS}.${from}`) // ILDCP through the farm
  const sender = connection.createStream()

  return {
    received: receiver.received,
    sender,
    packets: senderPlugin.sent,
    connection,
    server,
    async close({ graceful }) {
      await accepted.catch(() => undefined)
      if (graceful) {
        // Receiver first: its own connection may still be probing the exchange rate back
        // to the sender, and ilp-protocol-stream's end() waits for that probe, which
        // only succeeds while the sender's side is still up.
        await server.close()
        await connection.end()
      } else {
        await connection.destroy()
        await server.close()
      }
      await senderPlugin.close()
      await receiverPlugin.close()
    },
  }
}

async function allBalances(): Promise<Record<string, string>> {
  const { json } = await adminGet<{ accounts: Array<{ id: string; balance: string }> }>(farm.url, '/admin/accounts?limit=1000')
  return Object.fromEntries(json.accounts.map((a) => [a.id, a.balance]))
}

async function hotSet(): Promise<unknown[]> {
  return (await adminGet<unknown[]>(farm.url, '/admin/hotset')).json
}

function sumOf(balances: Record<string, string>): bigint {
  return Object.values(balances).reduce((sum, b) => sum + BigInt(b), 0n)
}

describe('STREAM through the farm', () => {
  it('pays 1,000,000 from one child to another in several packets, with exact balances', async () => {
    const payment = await openPayment('sender', 'receiver')
    await payment.sender.sendTotal(1_000_000, { timeout: 15_000 })
    expect(payment.sender.totalSent).toBe('1000000')
    expect(payment.received()).toBe(1_000_000n)

    // STREAM learnt the sender's limit from the farm's F08 (received, maximum) ...
    const f08 = payment.packets.filter((p) => p.result === 'F08')
    expect(f08.length).toBeGreaterThan(0)
    for (const p of f08) {
      const reader = new Reader(p.data!)
      expect(reader.readUInt64()).toBe(p.amount)
      expect(reader.readUInt64()).toBe(SENDER_MAX_PACKET)
    }
    // ... and so paid in at least 10 fulfilled packets, none above it
    const paid = payment.packets.filter((p) => p.result === 'fulfill')
    expect(paid.length).toBeGreaterThanOrEqual(10)
    for (const p of paid) expect(BigInt(p.amount)).toBeLessThanOrEqual(BigInt(SENDER_MAX_PACKET))
    expect(paid.reduce((sum, p) => sum + BigInt(p.amount), 0n)).toBe(1_000_000n)
    expect(payment.packets.filter((p) => p.result === 'error')).toEqual([])
    await payment.close({ graceful: true })

    expect(payment.received()).toBe(1_000_000n)
    expect(await balanceOf(farm.url, 'sender')).toBe('-1000000')
    expect(await balanceOf(farm.url, 'receiver')).toBe('1000000') // the farm owes the receiver
    expect(await hotSet()).toEqual([])
    expect(sumOf(await allBalances())).toBe(0n)
  })

  it('stops cleanly when the sender runs out of credit, balances still exact', async () => {
    const payment = await openPayment('poor', 'payee')
    // 1,000,000 wanted, 300,000 of credit: STREAM gets T04s, backs off, and times out short of the goal.
    const outcome = await payment.sender.sendTotal(1_000_000, { timeout: 3_000 }).then(
      () => 'sent everything' as const,
      (err: Error) => err,
    )
    expect(outcome).toBeInstanceOf(Error)
    expect(payment.packets.some((p) => p.result === 'T04')).toBe(true)
    await payment.close({ graceful: false })

    const got = payment.received()
    expect(got).toBeGreaterThan(0n)
    expect(got).toBeLessThanOrEqual(300_000n)
    expect(BigInt(payment.sender.totalSent)).toBe(got)
    const poor = BigInt(await balanceOf(farm.url, 'poor'))
    expect(poor).toBe(-got)
    expect(poor).toBeGreaterThanOrEqual(-300_000n)
    expect(await balanceOf(farm.url, 'payee')).toBe(got.toString())
    expect(await hotSet()).toEqual([])
    expect(sumOf(await allBalances())).toBe(0n)
  })
})
