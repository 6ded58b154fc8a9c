import { createHash, randomBytes } from 'node:crypto'
import { deserializeIlpPrepare, deserializeIlpReject, type IlpPrepare, serializeIlpFulfill, serializeIlpPrepare, Type } from 'ilp-packet'
import { deserializeIldcpResponse, serializeIldcpRequest } from 'ilp-protocol-ildcp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FarmRpc, FarmRpcError, IncomingRouter, RpcPlugin } from 'ilp-farm-client'
import { account, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { freePort } from '../helpers/plugin-http.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/** RpcPlugin against a real farm (real redis-server, real sockets): what sendData answers in each case. */

let redis: TestRedis
let farm: TestFarm
const rpcs: FarmRpc[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  farm = await startTestFarm(redis.url, [
    account('alice', { minBalance: '-1000', incoming: { token: 'alice-token', callbackUrls: ['http://127.0.0.1:'] } }),
    account('rita', { incoming: { token: 'rita-token' } }),
  ])
})

afterAll(async () => {
  await Promise.allSettled(rpcs.map((r) => r.close()))
  await farm?.close()
  await redis?.close()
})

function rpc(url: string, token: string): FarmRpc {
  const r = new FarmRpc(url, token)
  rpcs.push(r)
  return r
}

function prepareTo(destination: string, amount = '10'): IlpPrepare {
  return { destination, amount, executionCondition: randomBytes(32), expiresAt: new Date(Date.now() + 5_000), data: Buffer.alloc(0) }
}

async function connected(plugin: RpcPlugin): Promise<RpcPlugin> {
  await plugin.connect()
  return plugin
}

describe('RpcPlugin', () => {
  it('answers ILDCP itself with the address it was given', async () => {
    const plugin = await connected(
      new RpcPlugin({
        sender: rpc(`${farm.url}/rpc`, 'alice-token'),
        ildcp: { response: { clientAddress: `${FARM_ADDRESS}.alice.pay-1`, assetCode: 'USD', assetScale: 6 }, serverAddress: FARM_ADDRESS },
      }),
    )
    const request = serializeIldcpRequest({ expiresAt: new Date(Date.now() + 5_000) })
    const reply = await plugin.sendData(request)
    expect(reply[0]).toBe(Type.TYPE_ILP_FULFILL)
    expect(deserializeIldcpResponse(reply)).toEqual({ clientAddress: `${FARM_ADDRESS}.alice.pay-1`, assetCode: 'USD', assetScale: 6 })
  })

  it('without an ILDCP answer of its own, the farm answers it', async () => {
    const plugin = await connected(new RpcPlugin({ sender: rpc(`${farm.url}/rpc`, 'alice-token') }))
    const reply = await plugin.sendData(serializeIldcpRequest({ expiresAt: new Date(Date.now() + 5_000) }))
    expect(deserializeIldcpResponse(reply).clientAddress).toBe(`${FARM_ADDRESS}.alice`)
  })

  it("passes the farm's reject through (ilp_sendPrepare's result)", async () => {
    const plugin = await connected(new RpcPlugin({ sender: rpc(`${farm.url}/rpc`, 'alice-token') }))
    const reject = deserializeIlpReject(await plugin.sendData(serializeIlpPrepare(prepareTo('test.nowhere.x'))))
    expect(reject.code).toBe('F02')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
  })

  it('F00 when the farm refuses the call (bad token), T01 when it cannot be reached, F00 when disconnected', async () => {
    const refused = await connected(new RpcPlugin({ sender: rpc(`${farm.url}/rpc`, 'wrong-token') }))
    const r1 = deserializeIlpReject(await refused.sendData(serializeIlpPrepare(prepareTo('test.farm.alice'))))
    expect(r1.code).toBe('F00')
    expect(r1.message).toMatch(/Unauthorized/)
    await expect(rpc(`${farm.url}/rpc`, 'wrong-token').getBalance()).rejects.toBeInstanceOf(FarmRpcError)

    const nobody = await connected(new RpcPlugin({ sender: rpc(`http://127.0.0.1:${await freePort()}/rpc`, 'alice-token') }))
    expect(deserializeIlpReject(await nobody.sendData(serializeIlpPrepare(prepareTo('test.farm.alice')))).code).toBe('T01')

    const plugin = await connected(new RpcPlugin({ sender: rpc(`${farm.url}/rpc`, 'alice-token') }))
    await plugin.disconnect()
    expect(deserializeIlpReject(await plugin.sendData(serializeIlpPrepare(prepareTo('test.farm.alice')))).code).toBe('F00')
  })
})

describe('IncomingRouter', () => {
  const fulfillment = randomBytes(32)
  const condition = createHash('sha256').update(fulfillment).digest()

  function answering(name: string, seen: string[]): RpcPlugin {
    const plugin = new RpcPlugin({ sender: { sendPrepare: () => Promise.reject(new Error('unused')) } })
    plugin.registerDataHandler(async (data) => {
      seen.push(`${name} ${deserializeIlpPrepare(data).destination}`)
      return serializeIlpFulfill({ fulfillment, data: Buffer.alloc(0) })
    })
    return plugin
  }

  it('hands each prepare to the plugin owning the next segment, else to the default plugin', async () => {
    const seen: string[] = []
    const router = new IncomingRouter('test.farm.bob')
    const payment = answering('payment', seen)
    const server = answering('server', seen)
    await payment.connect()
    await server.connect()
    const p = (destination: string): IlpPrepare => ({ ...prepareTo(destination), executionCondition: condition })

    // nobody listening yet
    expect(deserializeIlpReject(await router.handle(p('test.farm.bob.xyz'))).code).toBe('F02')
    router.attach('pay-1', payment)
    router.setDefault(server)
    await router.handle(p('test.farm.bob.pay-1'))
    await router.handle(p('test.farm.bob.pay-1.sub'))
    await router.handle(p('test.farm.bob.token123'))
    await router.handle(p('test.farm.bob'))
    expect(seen).toEqual(['payment test.farm.bob.pay-1', 'payment test.farm.bob.pay-1.sub', 'server test.farm.bob.token123', 'server test.farm.bob'])
    // not an address of this account
    expect(deserializeIlpReject(await router.handle(p('test.farm.bobby'))).code).toBe('F02')
    router.detach('pay-1')
    await router.handle(p('test.farm.bob.pay-1'))
    expect(seen.at(-1)).toBe('server test.farm.bob.pay-1')
  })
})

describe('FarmRpc.rotateToken', () => {
  it('answers the new token and goes on with it; the old one is refused', async () => {
    const client = rpc(`${farm.url}/rpc`, 'rita-token')
    const token = await client.rotateToken()
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/)
    expect((await client.getAccountInfo()).accountId).toBe('rita')
    const stale = rpc(`${farm.url}/rpc`, 'rita-token')
    const refused = await stale.getBalance().catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(FarmRpcError)
    expect(refused).toMatchObject({ code: -32001, message: expect.stringContaining('token is not valid') })
  })
})
