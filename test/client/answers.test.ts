import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { FarmRpc, FarmTransportError, resolveSpsp } from 'ilp-farm-client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

/**
 * How the client reads what a farm (JSON-RPC) or an SPSP server answers:
 * a real HTTP server on loopback answers each request with the next body
 * queued, and the client takes a good answer and names what is wrong in a
 * bad one.
 */

let server: Server
let base: string
/** Bodies to answer with, in order; a JSON-RPC body gets the request's id. */
const queue: Array<{ status?: number; body: unknown; rpc?: boolean }> = []

beforeAll(async () => {
  server = createServer((req, res) => {
    let text = ''
    req.on('data', (c: Buffer) => (text += c.toString('utf8')))
    req.on('end', () => {
      const next = queue.shift() ?? { status: 500, rpc: false, body: 'nothing queued' }
      const id = text === '' ? null : (JSON.parse(text) as { id: number }).id
      const body = next.rpc === false ? next.body : { jsonrpc: '2.0', id, ...(next.body as object) }
      res.writeHead(next.status ?? 200, { 'content-type': 'application/json' }).end(typeof body === 'string' ? body : JSON.stringify(body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
})

afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())))

async function refusal(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call()
  } catch (err) {
    return err as Error
  }
  throw new Error('taken, not refused')
}

describe('FarmRpc reads the results it is given', () => {
  const info = { accountId: 'alice', relation: 'child', ilpAddress: 'test.farm.alice', connectorAddress: 'test.farm', assetCode: 'USD', assetScale: 6 }

  it('takes good results, keeping the fields it knows', async () => {
    const rpc = new FarmRpc(`${base}/rpc`, 'token')
    queue.push({ body: { result: { ...info, allowedUrlPrefixes: ['http://127.0.0.1:'], paymentPointer: null } } })
    expect(await rpc.getAccountInfo()).toEqual({ ...info, allowedUrlPrefixes: ['http://127.0.0.1:'] })
    queue.push({ body: { result: { balance: '-5', minBalance: '-100', maxBalance: null, maxPacketAmount: '10' } } })
    expect(await rpc.getBalance()).toEqual({ balance: '-5', minBalance: '-100', maxBalance: null, maxPacketAmount: '10' })
    queue.push({ body: { result: { url: null } } })
    expect(await rpc.getRpcUrl()).toBeNull()
    queue.push({ body: { result: { token: 'new-token' } } })
    expect(await rpc.rotateToken()).toBe('new-token')
    await rpc.close()
  })

  it('refuses results of the wrong shape, naming the field', async () => {
    const rpc = new FarmRpc(`${base}/rpc`, 'token')
    queue.push({ body: { result: { ...info, assetScale: '6' } } })
    expect(await refusal(() => rpc.getAccountInfo())).toMatchObject({ name: 'FarmTransportError', message: "ilp_getAccountInfo: the result's assetScale is missing or of the wrong type" })
    queue.push({ body: { result: { ...info, relation: 'sibling' } } })
    expect((await refusal(() => rpc.getAccountInfo())).message).toContain("the result's relation")
    queue.push({ body: { result: { ...info, allowedUrlPrefixes: [1] } } })
    expect((await refusal(() => rpc.getAccountInfo())).message).toContain("the result's allowedUrlPrefixes is of the wrong type")
    queue.push({ body: { result: { balance: 5, minBalance: '0', maxBalance: null, maxPacketAmount: null } } })
    expect((await refusal(() => rpc.getBalance())).message).toContain("the result's balance")
    queue.push({ body: { result: [] } })
    expect((await refusal(() => rpc.getRpcUrl())).message).toBe('ilp_getRpcUrl: the result is not an object')
    queue.push({ body: { result: { token: '' } } })
    expect(await refusal(() => rpc.rotateToken())).toBeInstanceOf(FarmTransportError)
    await rpc.close()
  })

  it('tells an error object from a body that is no JSON-RPC response', async () => {
    const rpc = new FarmRpc(`${base}/rpc`, 'token')
    queue.push({ body: { error: { code: -32001, message: 'unknown token', data: { reason: 'x' } } } })
    expect(await refusal(() => rpc.getBalance())).toMatchObject({ name: 'FarmRpcError', code: -32001, data: { reason: 'x' } })
    queue.push({ body: { error: { code: 'bad', message: 'x' } } })
    expect(await refusal(() => rpc.getBalance())).toMatchObject({ name: 'FarmTransportError', message: 'ilp_getBalance: HTTP 200, not a JSON-RPC response' })
    queue.push({ rpc: false, body: { jsonrpc: '1.0', id: 1, result: {} } })
    expect(await refusal(() => rpc.getBalance())).toBeInstanceOf(FarmTransportError)
    queue.push({ rpc: false, body: 'not json' })
    expect((await refusal(() => rpc.getBalance())).message).toBe('ilp_getBalance: HTTP 200, body is not JSON')
    queue.push({ status: 503, body: { result: { balance: '0' } } })
    expect(await refusal(() => rpc.getBalance())).toMatchObject({ name: 'FarmTransportError', status: 503 })
    await rpc.close()
  })
})

describe('resolveSpsp reads an SPSP answer', () => {
  const secret = Buffer.alloc(32, 9)

  it('takes a destination and a 32-byte secret, in either base64 alphabet', async () => {
    queue.push({ rpc: false, body: { destination_account: 'test.farm.bob.x', shared_secret: secret.toString('base64') } })
    expect(await resolveSpsp(`${base}/spsp`)).toEqual({ destinationAccount: 'test.farm.bob.x', sharedSecret: secret })
    queue.push({ rpc: false, body: { destination_account: 'test.farm.bob.x', shared_secret: secret.toString('base64url') } })
    expect((await resolveSpsp(`${base}/spsp`)).sharedSecret).toEqual(secret)
  })

  it('refuses a bad address, a bad or short secret, an answer that is no object, and a status other than 200', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ destination_account: 'bob', shared_secret: secret.toString('base64') }, /destination_account must be an ILP address/],
      [{ shared_secret: secret.toString('base64') }, /destination_account must be an ILP address/],
      [{ destination_account: 'test.farm.bob', shared_secret: secret.subarray(0, 31).toString('base64') }, /shared_secret must be 32 bytes/],
      [{ destination_account: 'test.farm.bob', shared_secret: '!!' }, /shared_secret must be 32 bytes/],
      [null, /destination_account must be an ILP address/],
    ]
    for (const [body, message] of cases) {
      queue.push({ rpc: false, body })
      expect((await refusal(() => resolveSpsp(`${base}/spsp`))).message).toMatch(message)
    }
    queue.push({ rpc: false, status: 404, body: {} })
    expect((await refusal(() => resolveSpsp(`${base}/spsp`))).message).toMatch(/answered HTTP 404/)
  })
})
