import 'ilp-farm-client/stream-compat'
import { randomBytes } from 'node:crypto'
import { createConnection } from 'ilp-protocol-stream'
import { verifyReceipt } from 'ilp-protocol-stream/dist/src/util/receipt.js'
import { Type } from 'ilp-packet'
import { request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { knownCondition } from '../helpers/peer.js'
import { createPlugin, freePort, type TestPlugin } from '../helpers/plugin-http.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The farm-hosted receiver: a child account with no outgoing URL and no RPC
 * URL (its user offline) is paid over STREAM through its payment pointer,
 * answered by the farm. Two workers on one Redis: the SPSP answer comes from
 * one, the packets go through the other, since nothing per connection is kept.
 * Real Redis, real sockets, ilp-protocol-stream as the sender.
 */
let redis: TestRedis
const farms: TestFarm[] = []
const plugins: TestPlugin[] = []

beforeAll(async () => {
  redis = await startTestRedis()
  const accounts = [
    account('alice', { minBalance: '-1000000000', outgoing: { url: `http://127.0.0.1:${await freePort()}/`, token: 'farm-to-alice' } }),
    account('bob'),
    account('eve', { assetCode: 'EUR', assetScale: 2 }),
    account('upstream', { relation: 'peer' }),
  ]
  const config = { redis: { keyPrefix: 'hosted:' }, rates: { prices: { USD: '1', EUR: '1' } } }
  for (const shard of [0, 1]) farms.push(await startTestFarm(redis.url, accounts, config, { shard }))
})

afterAll(async () => {
  await Promise.allSettled(plugins.map((p) => p.close()))
  for (const farm of farms) await farm.close()
  await redis?.close()
})

async function spsp(farm: TestFarm, id: string) {
  const res = await request(`${farm.url}/accounts/${id}/spsp`, { headers: { accept: 'application/spsp4+json, application/spsp+json' } })
  const text = await res.body.text()
  return { status: res.statusCode, type: res.headers['content-type'], json: JSON.parse(text) as Record<string, unknown> }
}

/** Alice, through `via`, opens a STREAM connection to the SPSP details and sends `amount` on one stream, then ends it. */
async function payFromAlice(via: TestFarm, details: Record<string, unknown>, amount: number) {
  const alice = createPlugin({ port: await freePort(), farmUrl: via.url, accountId: 'alice', outgoingToken: 'alice-token', incomingToken: 'farm-to-alice' })
  plugins.push(alice)
  const connection = await createConnection({
    plugin: alice.plugin,
    destinationAccount: details.destination_account as string,
    sharedSecret: Buffer.from(details.shared_secret as string, 'base64'),
  })
  const stream = connection.createStream()
  await stream.sendTotal(amount, { timeout: 15_000 })
  await connection.end()
  return { alice, connection, stream }
}

describe('the farm-hosted receiver', () => {
  it('answers SPSP for a child account: a connection under its hosted address, a fresh one each time; 404 for anything else', async () => {
    const first = await spsp(farms[0]!, 'bob')
    expect(first.status).toBe(200)
    expect(first.type).toContain('application/spsp4+json')
    expect(first.json.destination_account).toMatch(new RegExp(`^${FARM_ADDRESS.replace('.', '\\.')}\\.bob\\.~stream\\.[A-Za-z0-9_~-]+$`))
    expect(Buffer.from(first.json.shared_secret as string, 'base64')).toHaveLength(32)
    expect(first.json.receipts_enabled).toBe(false)
    const second = await spsp(farms[1]!, 'bob')
    expect(second.json.destination_account).not.toBe(first.json.destination_account)
    for (const id of ['nobody', 'upstream', 'a.b', '..']) expect((await spsp(farms[0]!, id)).status).toBe(404)
  })

  it('the account view and ilp_getAccountInfo show a child its payment pointer and SPSP URL; null for a peer', async () => {
    const farm = farms[0]!
    const host = new URL(farm.url).host
    const expected = { paymentPointer: `$${host}/accounts/bob/spsp`, spspUrl: `${farm.url}/accounts/bob/spsp` }
    expect((await adminGet<Record<string, unknown>>(farm.url, '/admin/accounts/bob')).json).toMatchObject(expected)
    expect((await adminGet<Record<string, unknown>>(farm.url, '/admin/accounts/upstream')).json).toMatchObject({ paymentPointer: null, spspUrl: null })
    const res = await request(`${farm.url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bob-token' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_getAccountInfo' }),
    })
    expect(((await res.body.json()) as { result: unknown }).result).toMatchObject(expected)
    // the URL it names answers SPSP
    expect((await request(expected.spspUrl)).statusCode).toBe(200)
  })

  it('an offline user is paid over STREAM through any worker: balances exact, nothing left in flight', async () => {
    const { json } = await spsp(farms[0]!, 'bob')
    const { alice, connection, stream } = await payFromAlice(farms[1]!, json, 250_000)
    // the receiver told the sender its asset over STREAM
    expect([connection.destinationAssetCode, connection.destinationAssetScale]).toEqual(['USD', 6])
    expect(stream.totalSent).toBe('250000')
    expect(await balanceOf(farms[0]!.url, 'bob')).toBe('250000')
    expect(await balanceOf(farms[0]!.url, 'alice')).toBe('-250000')
    expect((await adminGet<unknown[]>(farms[0]!.url, '/admin/hotset')).json).toEqual([])
    // the exchange-rate probes were the receiver's F99 rejects, refunded; the money went in fulfilled packets
    const paid = alice.sent.filter((p) => p.result === 'fulfill' && p.destination.startsWith(`${FARM_ADDRESS}.bob.~stream.`))
    expect(paid.reduce((sum, p) => sum + BigInt(p.amount), 0n)).toBe(250_000n)
  })

  it('gives STREAM receipts (RFC 39) when SPSP is asked for them: each verifies with the secret, the last for the whole amount, and the history keeps it', async () => {
    const nonce = randomBytes(16)
    const secret = randomBytes(32)
    const res = await request(`${farms[0]!.url}/accounts/bob/spsp`, { headers: { 'receipt-nonce': nonce.toString('base64'), 'receipt-secret': secret.toString('base64') } })
    const details = (await res.body.json()) as Record<string, unknown>
    expect(details.receipts_enabled).toBe(true)
    const { stream } = await payFromAlice(farms[1]!, details, 40_000)
    const receipt = verifyReceipt(stream.receipt!, secret)
    expect([receipt.nonce.equals(nonce), receipt.totalReceived.toString()]).toEqual([true, '40000'])
    // a receipt made with another secret does not verify
    expect(() => verifyReceipt(stream.receipt!, randomBytes(32))).toThrow()
    const rpc = await request(`${farms[0]!.url}/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer bob-token' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ilp_getPayments', params: { limit: 1 } }),
    })
    const [latest] = ((await rpc.body.json()) as { result: { payments: Array<{ amount: string; receipt?: string; receiptTotal?: string }> } }).result.payments
    expect(latest).toMatchObject({ amount: '40000', receiptTotal: '40000' })
    expect(verifyReceipt(Buffer.from(latest!.receipt!, 'base64'), secret).totalReceived.toString()).toBe('40000')
    // only both headers, of the right sizes
    const half = await request(`${farms[0]!.url}/accounts/bob/spsp`, { headers: { 'receipt-nonce': nonce.toString('base64') } })
    expect(half.statusCode).toBe(400)
    await half.body.dump()
  })

  it('is told the account’s own asset, and is credited in it', async () => {
    const { json } = await spsp(farms[1]!, 'eve')
    const before = BigInt(await balanceOf(farms[0]!.url, 'alice'))
    // 1 USD at scale 6 is 100 EUR cents at rate 1
    const { connection } = await payFromAlice(farms[0]!, json, 1_000_000)
    expect([connection.destinationAssetCode, connection.destinationAssetScale]).toEqual(['EUR', 2])
    expect(await balanceOf(farms[0]!.url, 'eve')).toBe('100')
    expect(BigInt(await balanceOf(farms[0]!.url, 'alice'))).toBe(before - 1_000_000n)
  })

  it('a packet to a hosted address it did not make, or to the user’s own address while offline, moves nothing', async () => {
    const before = [await balanceOf(farms[0]!.url, 'alice'), await balanceOf(farms[0]!.url, 'bob')]
    const forged = await sendIlp(farms[0]!.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob.~stream.not-a-token`, '1000', knownCondition()))
    expect(forged.packet?.type).toBe(Type.TYPE_ILP_REJECT)
    expect((forged.packet?.data as { code: string }).code).toMatch(/^F/)
    const offline = await sendIlp(farms[0]!.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob.somewhere`, '1000', knownCondition()))
    expect((offline.packet?.data as { code: string; message: string }).code).toBe('T01')
    expect([await balanceOf(farms[0]!.url, 'alice'), await balanceOf(farms[0]!.url, 'bob')]).toEqual(before)
    expect((await adminGet<unknown[]>(farms[0]!.url, '/admin/hotset')).json).toEqual([])
  })
})
