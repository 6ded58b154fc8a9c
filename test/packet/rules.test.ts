import { type IlpReject, serializeIlpFulfill, serializeIlpReject, serializeIlpPrepare } from 'ilp-packet'
import { deserializeIldcpResponse, serializeIldcpRequest } from 'ilp-protocol-ildcp'
import { Reader } from 'oer-utils'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, balanceOf, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, makeCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * One test per ILPv4 connector rule (../shared/ILP-REFERENCE.md), each
 * asserting the exact code, over real HTTP against a real Redis.
 */

let redis: TestRedis
let farm: TestFarm
let bob: TestPeer // fulfils what it knows
let hanger: TestPeer // never answers
let broken: TestPeer // answers 503
let liar: TestPeer // fulfils with a wrong fulfillment
let rejecter: TestPeer // rejects with its own code and data
let huge: TestPeer // answers 200 with far more than an ILP reply
const downstreamReject = serializeIlpReject({
  code: 'F99',
  triggeredBy: 'test.elsewhere.receiver',
  message: 'no thanks',
  data: Buffer.from('stream-data-must-survive'),
})

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  hanger = await startTestPeer(() => 'hang')
  broken = await startTestPeer(() => ({ status: 503 }))
  liar = await startTestPeer(() => serializeIlpFulfill({ fulfillment: Buffer.alloc(32, 7), data: Buffer.alloc(0) }))
  rejecter = await startTestPeer(() => downstreamReject)
  huge = await startTestPeer(() => Buffer.alloc(100_000, 13))
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000', maxPacketAmount: '5000' }),
      account('bob', { outgoing: { url: bob.url, token: 'to-bob' } }),
      account('poor', { minBalance: '-100' }),
      account('capped', { outgoing: { url: bob.url }, maxBalance: '150', relation: 'peer', routes: ['test.capped'] }),
      account('small', { outgoing: { url: bob.url }, maxPacketAmount: '10', relation: 'peer', routes: ['test.small'] }),
      account('hanger', { relation: 'peer', outgoing: { url: hanger.url }, routes: ['test.hang'] }),
      account('broken', { relation: 'peer', outgoing: { url: broken.url }, routes: ['test.broken'] }),
      account('down', { relation: 'peer', outgoing: { url: 'http://127.0.0.1:1/ilp' }, routes: ['test.down'] }),
      account('liar', { relation: 'peer', outgoing: { url: liar.url }, routes: ['test.liar'] }),
      account('rejecter', { relation: 'peer', outgoing: { url: rejecter.url }, routes: ['test.rejecter'] }),
      account('huge', { relation: 'peer', outgoing: { url: huge.url }, routes: ['test.huge'] }),
      account('loop', { relation: 'peer', minBalance: '-1000', outgoing: { url: bob.url }, routes: ['test.loop'] }),
    ],
    { minMessageWindowMs: 500, maxHoldTimeMs: 1500 },
  )
})

afterAll(async () => {
  await farm?.close()
  await Promise.all([bob, hanger, broken, liar, rejecter, huge].map((p) => p?.close()))
  await redis?.close()
})

function rejectOf(res: { status: number; packet?: { type: number; data: unknown } }): IlpReject {
  expect(res.status).toBe(200)
  expect(res.packet?.type).toBe(14)
  return res.packet!.data as IlpReject
}

describe('ILPv4 connector rules', () => {
  it('forwards to the longest matching prefix and returns the fulfill', async () => {
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob.wallet`, '100', knownCondition()))
    expect(res.status).toBe(200)
    expect(res.packet?.type).toBe(13)
    const last = bob.received.at(-1)!
    expect(last.headers.authorization).toBe('Bearer to-bob')
    expect(last.prepare.amount).toBe('100')
  })

  it('F01 for a Prepare whose contents do not parse', async () => {
    const good = serializeIlpPrepare(prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition()))
    // corrupt the expiresAt timestamp (bytes 10..26) into letters
    const bad = Buffer.from(good)
    bad.write('notadatenotadatex', 10, 'ascii')
    expect(rejectOf(await sendIlp(farm.url, 'alice', bad)).code).toBe('F01')
  })

  it('F01 for a destination that is not an ILP address', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('not an address', '1', knownCondition())))
    expect(reject.code).toBe('F01')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
  })

  it('F02 when no route matches', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('g.nowhere.at.all', '1', knownCondition())))
    expect(reject.code).toBe('F02')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
  })

  it('F02 for a route back to the sender', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'loop', prepareTo('test.loop.x', '1', knownCondition())))
    expect(reject.code).toBe('F02')
  })

  it('F02 for peer.* destinations (never forwarded); route messages (CCP) from an account without sendRoutes/receiveRoutes: F00', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('peer.something', '0', knownCondition())))
    expect(reject.code).toBe('F02')
    const ccp = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('peer.route.control', '0', knownCondition())))
    expect(ccp.code).toBe('F00')
  })

  it('routes by segment, not by string prefix: test.capped does not match test.cappedx', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.cappedx', '1', knownCondition())))
    expect(reject.code).toBe('F02')
  })

  it("F08 over the sender's maxPacketAmount, with received and maximum in its data", async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '5001', knownCondition())))
    expect(reject.code).toBe('F08')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(reject.data.length).toBe(16)
    const reader = new Reader(reject.data)
    expect(reader.readUInt64()).toBe('5001')
    expect(reader.readUInt64()).toBe('5000')
  })

  it("F08 over the next hop's maxPacketAmount", async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.small.x', '11', knownCondition())))
    expect(reject.code).toBe('F08')
    const reader = new Reader(reject.data)
    expect(reader.readUInt64()).toBe('11')
    expect(reader.readUInt64()).toBe('10')
  })

  it('R02 when less than minMessageWindow is left', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), 300)))
    expect(reject.code).toBe('R02')
    const expired = rejectOf(await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), -1000)))
    expect(expired.code).toBe('R02')
  })

  it('shortens the expiry by minMessageWindow and caps it at maxHoldTime', async () => {
    const near = prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), 1200)
    await sendIlp(farm.url, 'alice', near)
    expect(bob.received.at(-1)!.prepare.expiresAt.getTime()).toBe(near.expiresAt.getTime() - 500)

    const far = prepareTo(`${FARM_ADDRESS}.bob`, '1', knownCondition(), 60_000)
    const before = Date.now()
    await sendIlp(farm.url, 'alice', far)
    const forwarded = bob.received.at(-1)!.prepare.expiresAt.getTime()
    expect(forwarded).toBeGreaterThanOrEqual(before + 1500)
    expect(forwarded).toBeLessThanOrEqual(Date.now() + 1500)
  })

  it('R00 when the next hop does not answer before the outgoing expiry', async () => {
    const started = Date.now()
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.hang.x', '7', knownCondition(), 5000)))
    expect(reject.code).toBe('R00')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    const waited = Date.now() - started
    expect(waited).toBeGreaterThanOrEqual(1400) // maxHoldTime 1500 ms
    expect(waited).toBeLessThan(4000)
  })

  it('T01 when the next hop is unreachable, with a message of the farm\'s own (no address, no error text)', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.down.x', '1', knownCondition())))
    expect(reject.code).toBe('T01')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(reject.message).toBe('no valid answer from the next hop')
  })

  it('T01 when the next hop answers with more than an ILP reply can be, and the sender is refunded', async () => {
    const before = await balanceOf(farm.url, 'alice')
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.huge.x', '9', knownCondition())))
    expect(reject.code).toBe('T01')
    expect(reject.message).toBe('no valid answer from the next hop')
    expect(await balanceOf(farm.url, 'alice')).toBe(before)
  })

  it('T00 when the next hop answers 5xx (RFC 35): it is there but cannot serve now', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.broken.x', '1', knownCondition())))
    expect(reject).toMatchObject({ code: 'T00', triggeredBy: FARM_ADDRESS, message: 'the next hop is temporarily unavailable' })
  })

  it('F05 for a fulfillment that does not hash to the condition, and no credit', async () => {
    const before = await balanceOf(farm.url, 'liar')
    const aliceBefore = await balanceOf(farm.url, 'alice')
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.liar.x', '40', makeCondition().condition)))
    expect(reject.code).toBe('F05')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(await balanceOf(farm.url, 'liar')).toBe(before)
    expect(await balanceOf(farm.url, 'alice')).toBe(aliceBefore)
  })

  it('T04 when the sender has not enough balance or credit', async () => {
    const reject = rejectOf(await sendIlp(farm.url, 'poor', prepareTo(`${FARM_ADDRESS}.bob`, '101', knownCondition())))
    expect(reject.code).toBe('T04')
    expect(reject.triggeredBy).toBe(FARM_ADDRESS)
    expect(await balanceOf(farm.url, 'poor')).toBe('0')
    const ok = await sendIlp(farm.url, 'poor', prepareTo(`${FARM_ADDRESS}.bob`, '100', knownCondition()))
    expect(ok.packet?.type).toBe(13)
    expect(await balanceOf(farm.url, 'poor')).toBe('-100')
  })

  it('T04 when a fulfill would push the next hop above its maxBalance', async () => {
    const first = await sendIlp(farm.url, 'alice', prepareTo('test.capped.x', '100', knownCondition()))
    expect(first.packet?.type).toBe(13)
    const reject = rejectOf(await sendIlp(farm.url, 'alice', prepareTo('test.capped.x', '51', knownCondition())))
    expect(reject.code).toBe('T04')
    expect(await balanceOf(farm.url, 'capped')).toBe('100')
  })

  it('passes a downstream reject through unchanged, data included', async () => {
    const res = await sendIlp(farm.url, 'alice', prepareTo('test.rejecter.x', '3', knownCondition()))
    expect(res.status).toBe(200)
    expect(res.body.equals(downstreamReject)).toBe(true)
  })

  it('answers ILDCP for a child with <farm address>.<account id>', async () => {
    const res = await sendIlp(farm.url, 'alice', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 30_000) }))
    expect(res.status).toBe(200)
    const answer = deserializeIldcpResponse(res.body)
    expect(answer).toEqual({ clientAddress: `${FARM_ADDRESS}.alice`, assetCode: 'USD', assetScale: 6 })
  })

  it('refuses ILDCP to a non-child with F02', async () => {
    const res = await sendIlp(farm.url, 'loop', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 30_000) }))
    expect(rejectOf(res).code).toBe('F02')
  })

  it('routes <farm address>.<child> to each child automatically', async () => {
    // bob has no static route: only the automatic child route reaches it
    const res = await sendIlp(farm.url, 'alice', prepareTo(`${FARM_ADDRESS}.bob.sub.address`, '5', knownCondition()))
    expect(res.packet?.type).toBe(13)
    expect(bob.received.at(-1)!.prepare.destination).toBe(`${FARM_ADDRESS}.bob.sub.address`)
  })
})
