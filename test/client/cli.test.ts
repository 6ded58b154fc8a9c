import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FarmRpc } from 'ilp-farm-client'
import { account, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { type ClientCli, runClientCli, startTunnelServerProcess } from './processes.js'

/**
 * The ilp-farm-client CLI as real processes: a tunnel server, a receiver
 * behind it, a payer with a progress bar, and `balance`, against a farm
 * whose two child accounts have no `outgoing`.
 */

const callbackUrls = ['http://127.0.0.1:']
let redis: TestRedis
let farm: TestFarm
const clis: ClientCli[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [
    account('payer', { minBalance: '-2000000', maxPacketAmount: '250000', incoming: { token: 'payer-token', callbackUrls } }),
    account('payee', { incoming: { token: 'payee-token', callbackUrls } }),
    account('idle', { incoming: { token: 'idle-token', callbackUrls } }),
  ])
})

afterAll(async () => {
  await Promise.all(clis.map((c) => c.kill()))
  await farm?.close()
  await redis?.close()
})

function cli(args: string[], env: NodeJS.ProcessEnv = {}): ClientCli {
  const c = runClientCli(args, env)
  clis.push(c)
  return c
}

describe('ilp-farm-client CLI', () => {
  it('receive behind a tunnel, pay with a progress bar, balance; receive stops cleanly', async () => {
    const tunnel = await startTunnelServerProcess()
    clis.push(tunnel.cli)
    const rpcUrl = `${farm.url}/rpc`
    // Farm options from the environment here, from flags for pay.
    const receiver = cli(['receive', '--tunnel-host', tunnel.url], { ILP_FARM_RPC_URL: rpcUrl, ILP_FARM_TOKEN: 'payee-token' })
    const destination = (await receiver.waitFor(/destination: (\S+)/))[1]!
    const secret = (await receiver.waitFor(/secret: (\S+)/))[1]!
    expect(destination.startsWith(`${FARM_ADDRESS}.payee.`)).toBe(true)
    await receiver.waitFor(new RegExp(`spsp: ${tunnel.url}/[0-9a-f]+/spsp`))
    expect(receiver.stdout()).toMatch(new RegExp(`registered: ${tunnel.url}/[0-9a-f]+/\\S+`))
    const registered = receiver.stdout().match(/registered: (\S+)/)![1]!

    // Paying from the receiving account leaves its registration alone: the same URL before, during and after.
    const payeeRpc = new FarmRpc(rpcUrl, 'payee-token')
    expect(await payeeRpc.getRpcUrl()).toBe(registered)
    const outgoing = cli(['pay', '--rpc', rpcUrl, '--token', 'payee-token', '--to', 'test.nowhere.x', '--secret', secret, '--amount', '10', '--timeout', '2'])
    expect((await outgoing.exited).code).toBe(1)
    expect(await payeeRpc.getRpcUrl()).toBe(registered)
    await payeeRpc.close()

    // The payer opens no tunnel and registers nothing: STREAM is send-only, the receiver sends nothing back.
    const payer = cli(['pay', '--rpc', rpcUrl, '--token', 'payer-token', '--to', destination, '--secret', secret, '--amount', '1000000'])
    expect(await payer.exited, `${payer.stdout()}\n${payer.stderr()}\n${receiver.stdout()}`).toEqual({ code: 0, signal: null })
    expect(payer.stdout()).toContain(`paid: sent 1000000, delivered 1000000 to ${destination}`)

    await receiver.waitFor(/received: \d+ \(total 1000000\)/)
    const amounts = [...receiver.stdout().matchAll(/received: (\d+) \(total/g)].map((m) => BigInt(m[1]!))
    expect(amounts.length).toBeGreaterThanOrEqual(4) // the payer's packets are at most 250,000
    expect(amounts.reduce((a, b) => a + b, 0n)).toBe(1_000_000n)
    expect(await balanceOf(farm.url, 'payee')).toBe('1000000')
    expect(await balanceOf(farm.url, 'payer')).toBe('-1000000')

    const balance = cli(['balance', '--rpc', rpcUrl, '--token', 'payee-token'])
    expect((await balance.exited).code).toBe(0)
    expect(JSON.parse(balance.stdout())).toMatchObject({ accountId: 'payee', ilpAddress: `${FARM_ADDRESS}.payee`, balance: '1000000', assetCode: 'USD' })

    await receiver.kill('SIGTERM')
    expect(await receiver.exited).toEqual({ code: 0, signal: null })
    expect(receiver.stdout()).toContain('stopped; received 1000000 in all')
    const rpc = new FarmRpc(rpcUrl, 'payee-token')
    expect(await rpc.getRpcUrl()).toBeNull()
    await rpc.close()
  })

  it('usage errors exit 2; a failed payment exits 1 and says how far it got', async () => {
    const missing = cli(['pay', '--amount', '5'])
    expect((await missing.exited).code).toBe(2)
    expect(missing.stderr()).toMatch(/missing --rpc \(or ILP_FARM_RPC_URL\)/)
    const unknown = cli(['dance'])
    expect((await unknown.exited).code).toBe(2)

    const secret = Buffer.alloc(32, 1).toString('base64')
    const failed = cli(['pay', '--rpc', `${farm.url}/rpc`, '--token', 'payer-token', '--to', 'test.nowhere.x', '--secret', secret, '--amount', '10', '--timeout', '2'])
    expect((await failed.exited).code).toBe(1)
    expect(failed.stderr()).toMatch(/payment failed: .*\(sent 0, delivered 0\)/)
    // the farm's own reject, not only STREAM's: no such account is F02, an account nobody receives for is T01
    expect(failed.stderr()).toContain('(first reject: F02 from test.farm: no route to test.nowhere.x)')
    const offline = cli(['pay', '--rpc', `${farm.url}/rpc`, '--token', 'payer-token', '--to', `${FARM_ADDRESS}.idle.x`, '--secret', secret, '--amount', '10', '--timeout', '2'])
    expect((await offline.exited).code).toBe(1)
    expect(offline.stderr()).toMatch(/\(first reject: T01 from test\.farm: receiver offline: idle has no RPC URL registered/)
    const rpc = new FarmRpc(`${farm.url}/rpc`, 'payer-token')
    expect(await rpc.getRpcUrl()).toBeNull()
    await rpc.close()
  })
})
