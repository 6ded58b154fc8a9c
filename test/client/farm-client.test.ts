import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FarmClient, type MoneyEvent, type PaymentProgress } from 'ilp-farm-client'
import { eventually } from '../helpers/async.js'
import { account, adminGet, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { type ClientCli, startTunnelServerProcess } from './processes.js'

/**
 * The client package end to end: a real redis-server, a farm, the tunnel
 * server as a child process on loopback, and two FarmClients on child
 * accounts that have no `outgoing` at all (only an RPC URL makes them
 * reachable). The receiver sits behind the tunnel; the tunnel server is
 * SIGKILLed and started again on the same port, and the receiver must
 * re-open its tunnel and re-register before the next payment.
 */

const SENDER_MAX_PACKET = '100000'
/** Only loopback URLs may be registered (what an operator allowing its own tunnel server would set). */
const callbackUrls = ['http://127.0.0.1:']

let redis: TestRedis
let farm: TestFarm
let tunnelServer: { cli: ClientCli; url: string; port: number }
let receiver: FarmClient
let sender: FarmClient
const money: MoneyEvent[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [
    account('sender', { minBalance: '-5000000', maxPacketAmount: SENDER_MAX_PACKET, incoming: { token: 'sender-token', callbackUrls } }),
    account('receiver', { incoming: { token: 'receiver-token', callbackUrls } }),
  ])
  tunnelServer = await startTunnelServerProcess()
  receiver = new FarmClient({
    rpcUrl: `${farm.url}/rpc`,
    token: 'receiver-token',
    tunnel: { host: tunnelServer.url },
    probeIntervalMs: 500,
    reconnectDelayMs: { min: 100, max: 500 },
  })
  receiver.onMoney((m) => money.push(m))
  // The sender needs no tunnel: its local endpoint is enough for the receiver's replies on loopback.
  sender = new FarmClient({ rpcUrl: `${farm.url}/rpc`, token: 'sender-token', tunnel: false })
})

afterAll(async () => {
  await sender?.stop().catch(() => undefined)
  await receiver?.stop().catch(() => undefined)
  await tunnelServer?.cli.kill()
  await farm?.close()
  await redis?.close()
})

async function balances(): Promise<Record<string, bigint>> {
  const { json } = await adminGet<{ accounts: Array<{ id: string; balance: string }> }>(farm.url, '/admin/accounts?limit=1000')
  return Object.fromEntries(json.accounts.map((a) => [a.id, BigInt(a.balance)]))
}

/** Resolves with the next emission of the event. */
function next<E extends 'registered' | 'tunnel-closed' | 'tunnel-open'>(client: FarmClient, event: E): Promise<unknown> {
  return new Promise((resolve) => client.once(event, resolve as never))
}

describe('FarmClient through a local tunnel server', () => {
  it('registers the tunnel URL as the RPC URL of an account without outgoing', async () => {
    const registered = next(receiver, 'registered')
    await receiver.start()
    await registered
    const url = receiver.registeredUrl!
    expect(url.startsWith(`${tunnelServer.url}/`)).toBe(true)
    expect(receiver.address).toBe(`${FARM_ADDRESS}.receiver`)
    const { json } = await adminGet<{ balance: string }>(farm.url, '/admin/accounts/receiver')
    expect(json.balance).toBe('0')

    await sender.start()
    expect(sender.registeredUrl!.startsWith('http://127.0.0.1:')).toBe(true)
    expect(await receiver.rpc.getRpcUrl()).toBe(url)
  })

  it('a STREAM payment of 1,000,000 from the sender arrives exactly, with exact farm balances', async () => {
    const before = await balances()
    const { destinationAccount, sharedSecret } = await receiver.receive('first')
    expect(destinationAccount.startsWith(`${FARM_ADDRESS}.receiver.`)).toBe(true)

    const progress: PaymentProgress[] = []
    const result = await sender.pay({ destinationAccount, sharedSecret }, 1_000_000n, { onProgress: (p) => progress.push(p), timeoutMs: 20_000 })

    expect(result.sent).toBe('1000000')
    expect(result.delivered).toBe('1000000')
    expect(result.sourceAccount.startsWith(`${FARM_ADDRESS}.sender.pay-`)).toBe(true)
    // paying never touches the payer's own registration
    expect(await sender.rpc.getRpcUrl()).toBe(sender.registeredUrl)
    // progress came per packet (the sender's limit is 100,000), monotonic, ending at the total
    expect(progress.length).toBeGreaterThanOrEqual(10)
    expect(progress.at(-1)).toEqual({ sent: '1000000', delivered: '1000000', total: '1000000' })
    for (let i = 1; i < progress.length; i++) expect(BigInt(progress[i]!.sent)).toBeGreaterThanOrEqual(BigInt(progress[i - 1]!.sent))

    await eventually(() => expect(receiver.totalReceived).toBe(1_000_000n))
    expect(money.every((m) => m.connectionTag === 'first')).toBe(true)
    expect(money.reduce((sum, m) => sum + BigInt(m.amount), 0n)).toBe(1_000_000n)
    expect(money.at(-1)!.totalReceived).toBe('1000000')

    const after = await balances()
    expect(after.sender! - before.sender!).toBe(-1_000_000n)
    expect(after.receiver! - before.receiver!).toBe(1_000_000n)
    expect(await balanceOf(farm.url, 'receiver')).toBe('1000000')
    expect((await receiver.balance()).balance).toBe('1000000')
    expect((await sender.balance()).balance).toBe('-1000000')
  })

  it('re-opens the tunnel and re-registers after the tunnel server is killed; later payments arrive exactly', async () => {
    const oldUrl = receiver.registeredUrl!
    const closed = next(receiver, 'tunnel-closed')
    await tunnelServer.cli.kill('SIGKILL')
    await closed
    expect(receiver.registeredUrl).toBeUndefined()

    // A payment now finds nobody at the registered URL: the farm answers T01, STREAM gives up, nothing moves.
    const before = await balances()
    const { destinationAccount, sharedSecret } = await receiver.receive('second')
    // The error carries the farm's T01, not only STREAM's own message.
    await expect(sender.pay({ destinationAccount, sharedSecret }, 1000n, { timeoutMs: 1_000 })).rejects.toMatchObject({
      name: 'PaymentError',
      reject: { code: 'T01', triggeredBy: FARM_ADDRESS },
      message: expect.stringContaining('(first reject: T01 from test.farm: '),
    })
    expect(await balances()).toEqual(before)

    const registered = next(receiver, 'registered')
    tunnelServer = await startTunnelServerProcess(tunnelServer.port)
    await registered
    const newUrl = receiver.registeredUrl!
    // The client asks for its old id again (with its secret); the restarted server has it free, so the URL stays.
    expect(newUrl).toBe(oldUrl)
    expect(newUrl.startsWith(`${tunnelServer.url}/`)).toBe(true)
    expect(await receiver.rpc.getRpcUrl()).toBe(newUrl)

    const receivedBefore = receiver.totalReceived
    const result = await sender.pay({ destinationAccount, sharedSecret }, 250_000n, { timeoutMs: 20_000 })
    expect(result.delivered).toBe('250000')
    await eventually(() => expect(receiver.totalReceived - receivedBefore).toBe(250_000n))
    const after = await balances()
    expect(after.sender! - before.sender!).toBe(-250_000n)
    expect(after.receiver! - before.receiver!).toBe(250_000n)
    expect(after.sender! + after.receiver!).toBe(0n)
    expect(after.receiver).toBe(receiver.totalReceived)
  })

  it('finishes a payment during which the tunnel server is killed and restarted', async () => {
    const before = await balances()
    const receivedBefore = receiver.totalReceived
    const { destinationAccount, sharedSecret } = await receiver.receive('third')
    let outage: Promise<void> | undefined
    const reopened = new Promise((resolve) => receiver.once('registered', resolve))
    const result = await sender.pay({ destinationAccount, sharedSecret }, 1_000_000n, {
      timeoutMs: 25_000,
      onProgress: (p) => {
        // Mid-way: kill the tunnel server, start it again a moment later on the same port.
        if (outage === undefined && BigInt(p.sent) >= 300_000n) {
          outage = (async () => {
            await tunnelServer.cli.kill('SIGKILL')
            await new Promise((r) => setTimeout(r, 300))
            tunnelServer = await startTunnelServerProcess(tunnelServer.port)
          })()
        }
      },
    })
    expect(outage).toBeDefined()
    await outage
    await reopened
    expect(result.sent).toBe('1000000')
    expect(result.delivered).toBe('1000000')
    const after = await balances()
    // The farm moved exactly what the sender's STREAM counts as sent, from one account to the other.
    expect(after.sender! - before.sender!).toBe(-1_000_000n)
    expect(after.receiver! - before.receiver!).toBe(1_000_000n)
    // A packet the receiver fulfilled while its answer was lost with the tunnel was refunded to the
    // sender by the farm (T01) and sent again: the receiver may count it twice, never less.
    await eventually(() => expect(receiver.totalReceived - receivedBefore).toBeGreaterThanOrEqual(1_000_000n))
  })

  it('pays an SPSP URL served by the receiver through its tunnel', async () => {
    const before = await balances()
    const spspUrl = receiver.spspUrl!
    expect(spspUrl.startsWith(`${tunnelServer.url}/`)).toBe(true)
    const result = await sender.pay({ spspUrl }, 123_456n, { timeoutMs: 20_000 })
    expect(result.delivered).toBe('123456')
    const after = await balances()
    expect(after.receiver! - before.receiver!).toBe(123_456n)
    expect(after.sender! - before.sender!).toBe(-123_456n)
  })

  it('clears the RPC URL on stop', async () => {
    await receiver.stop()
    expect(await sender.rpc.getRpcUrl()).not.toBeNull() // the sender's own stays
    const { FarmRpc } = await import('ilp-farm-client')
    const rpc = new FarmRpc(`${farm.url}/rpc`, 'receiver-token')
    expect(await rpc.getRpcUrl()).toBeNull()
    await rpc.close()
  })
})
