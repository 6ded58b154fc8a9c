import { randomUUID } from 'node:crypto'
import { type IlpPrepare, type IlpReject } from 'ilp-packet'
import {
  type CcpRouteUpdateRequest,
  CCP_CONTROL_DESTINATION,
  CCP_UPDATE_DESTINATION,
  deserializeCcpRouteControlRequestPayload,
  deserializeCcpRouteUpdateRequestPayload,
  Mode,
  PEER_PROTOCOL_FULFILLMENT,
  serializeCcpResponse,
  serializeCcpRouteControlRequest,
  serializeCcpRouteUpdateRequest,
} from 'ilp-protocol-ccp'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, FARM_ADDRESS, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'
import { Keys } from '../../src/store/keys.js'

/**
 * Route announcements (CCP) of one farm against recording peers: what it
 * sends decodes with ilp-protocol-ccp's own deserializers; what it accepts
 * lands in the shared routing table.
 */

const INTERVAL = 300

let redis: TestRedis
let farm: TestFarm
/** Peer A: we send it routes and take its routes. Peer B: the same. Peer C: nothing (no sendRoutes/receiveRoutes). */
let peerA: TestPeer
let peerB: TestPeer
let peerC: TestPeer

function ccpAnswer(prepare: IlpPrepare): Buffer {
  if (prepare.destination.startsWith('peer.route.')) return serializeCcpResponse()
  return fulfillKnown(prepare)
}

beforeAll(async () => {
  redis = await startTestRedis()
  peerA = await startTestPeer(ccpAnswer)
  peerB = await startTestPeer(ccpAnswer)
  peerC = await startTestPeer(ccpAnswer)
  const peer = (id: string, url: string, routes: boolean) =>
    account(id, { relation: 'peer', outgoing: { url }, sendRoutes: routes, receiveRoutes: routes })
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000' }),
      account('bob', { outgoing: { url: peerC.url } }),
      peer('peera', peerA.url, true),
      peer('peerb', peerB.url, true),
      peer('peerc', peerC.url, false),
    ],
    { routing: { broadcastIntervalMs: INTERVAL }, routes: [{ prefix: 'test.static', account: 'peera' }] },
  )
})

afterAll(async () => {
  await farm?.close()
  await Promise.all([peerA, peerB, peerC].map((p) => p?.close()))
  await redis?.close()
})

function updatesTo(peer: TestPeer): CcpRouteUpdateRequest[] {
  return peer.received.filter((r) => r.prepare.destination === CCP_UPDATE_DESTINATION).map((r) => deserializeCcpRouteUpdateRequestPayload(r.prepare.data))
}

async function eventually<T>(check: () => T | undefined | false, withinMs = 5000): Promise<T> {
  const start = Date.now()
  for (;;) {
    const value = check()
    if (value !== undefined && value !== false) return value
    if (Date.now() - start > withinMs) throw new Error(`not within ${withinMs} ms`)
    await new Promise((r) => setTimeout(r, 25))
  }
}

/** Every prefix → route the peer would now have from the farm's updates (applied in order, like a receiver). */
function peerView(peer: TestPeer): Map<string, string[]> {
  const view = new Map<string, string[]>()
  for (const u of updatesTo(peer)) {
    for (const p of u.withdrawnRoutes) view.delete(p)
    for (const r of u.newRoutes) view.set(r.prefix, r.path)
  }
  return view
}

let peerBEpoch = 0
const peerBTable = randomUUID()

/** peer B announces (new routes, withdrawals) as its next epoch. */
async function announceFromB(newRoutes: Array<{ prefix: string; path: string[] }>, withdrawn: string[] = [], holdDownTime = 30_000): Promise<IlpReject | 'fulfilled'> {
  const from = peerBEpoch
  const to = from + newRoutes.length + withdrawn.length
  const res = await sendIlp(
    farm.url,
    'peerb',
    serializeCcpRouteUpdateRequest({
      routingTableId: peerBTable,
      currentEpochIndex: to,
      fromEpochIndex: from,
      toEpochIndex: to,
      holdDownTime,
      speaker: 'test.bnet',
      newRoutes: newRoutes.map((r) => ({ ...r, auth: Buffer.alloc(32, 7), props: [] })),
      withdrawnRoutes: withdrawn,
    }),
  )
  if (res.packet?.type === 13) {
    expect((res.packet.data as { fulfillment: Buffer }).fulfillment.equals(PEER_PROTOCOL_FULFILLMENT)).toBe(true)
    peerBEpoch = to
    return 'fulfilled'
  }
  return res.packet!.data as IlpReject
}

async function candidatesOf(prefix: string): Promise<Record<string, { source: string; path?: string[]; expiresAtMs?: number }>> {
  const json = await redis.client.hget(new Keys(farm.config.redis.keyPrefix).routes, prefix)
  return json === null ? {} : (JSON.parse(json) as Record<string, { source: string; path?: string[] }>)
}

describe('route announcements (CCP)', () => {
  it('announces its own address (not each child) with epochs, a hold-down longer than the interval, and heartbeats', async () => {
    const first = await eventually(() => updatesTo(peerA)[0])
    expect(first.speaker).toBe(FARM_ADDRESS)
    expect(first.routingTableId).toMatch(/^[0-9a-f-]{36}$/)
    expect(first.fromEpochIndex).toBe(0)
    expect(first.toEpochIndex).toBe(first.currentEpochIndex)
    expect(first.currentEpochIndex).toBeGreaterThan(0)
    expect(first.holdDownTime).toBeGreaterThan(INTERVAL)
    expect(first.holdDownTime).toBe(INTERVAL * 2.5)
    const prefixes = first.newRoutes.map((r) => r.prefix)
    expect(prefixes).toContain(FARM_ADDRESS)
    expect(prefixes.filter((p) => p.startsWith(`${FARM_ADDRESS}.`))).toEqual([]) // children: covered by the farm's address
    const own = first.newRoutes.find((r) => r.prefix === FARM_ADDRESS)!
    expect(own.path).toEqual([FARM_ADDRESS])
    expect(own.auth.length).toBe(32)
    expect(own.auth.equals(Buffer.alloc(32))).toBe(false)
    // a static route is never advertised back to its own next hop (peer A): withdrawn for it; peer B gets it
    expect(prefixes).not.toContain('test.static')
    expect(first.withdrawnRoutes).toContain('test.static')
    const firstB = await eventually(() => updatesTo(peerB)[0])
    expect(firstB.newRoutes.find((r) => r.prefix === 'test.static')?.path).toEqual([FARM_ADDRESS])
    expect(firstB.routingTableId).toBe(first.routingTableId)

    // heartbeats: about one per interval, each a delta from what the peer has (nothing new: empty)
    const count = updatesTo(peerA).length
    await new Promise((r) => setTimeout(r, INTERVAL * 3.5))
    const later = updatesTo(peerA).slice(count)
    expect(later.length).toBeGreaterThanOrEqual(2)
    expect(later.length).toBeLessThanOrEqual(5)
    for (const u of later) {
      expect(u.routingTableId).toBe(first.routingTableId)
      expect(u.fromEpochIndex).toBe(u.toEpochIndex)
      expect(u.newRoutes).toEqual([])
    }
  })

  it('asks receiveRoutes peers for their routes (route control SYNC)', async () => {
    const control = await eventually(() => peerB.received.find((r) => r.prepare.destination === CCP_CONTROL_DESTINATION))
    const req = deserializeCcpRouteControlRequestPayload(control.prepare.data)
    expect(req.mode).toBe(Mode.MODE_SYNC)
    expect(peerC.received.some((r) => r.prepare.destination.startsWith('peer.route.'))).toBe(false)
  })

  it('learns routes, forwards by them, passes them on with its address prepended, never back to their source', async () => {
    expect(await announceFromB([{ prefix: 'test.bnet', path: ['test.bnet'] }])).toBe('fulfilled')
    const learned = await candidatesOf('test.bnet')
    expect(learned.peerb?.source).toBe('learned')
    expect(learned.peerb?.path).toEqual(['test.bnet'])
    expect(learned.peerb!.expiresAtMs!).toBeGreaterThan(Date.now())

    // every worker routes by it
    await eventually(() => farm.worker.services.routes.table.get('test.bnet'))
    const res = await sendIlp(farm.url, 'alice', prepareTo('test.bnet.carol', '10', knownCondition()))
    expect(res.packet?.type).toBe(13)
    expect(peerB.received.at(-1)?.prepare.destination).toBe('test.bnet.carol')

    // announced to A soon, in a delta, as [farm, ...path]; never to B
    const start = Date.now()
    const toA = await eventually(() => updatesTo(peerA).find((u) => u.newRoutes.some((r) => r.prefix === 'test.bnet')))
    expect(Date.now() - start).toBeLessThan(1500)
    expect(toA.fromEpochIndex).toBeGreaterThan(0)
    expect(toA.newRoutes.find((r) => r.prefix === 'test.bnet')!.path).toEqual([FARM_ADDRESS, 'test.bnet'])
    await new Promise((r) => setTimeout(r, INTERVAL * 2))
    expect(peerView(peerB).has('test.bnet')).toBe(false)
    expect(peerView(peerA).get('test.bnet')).toEqual([FARM_ADDRESS, 'test.bnet'])
  })

  it('withdraws: a prefix the peer withdraws is removed and withdrawn from the others', async () => {
    expect(await announceFromB([], ['test.bnet'])).toBe('fulfilled')
    expect(await candidatesOf('test.bnet')).toEqual({})
    const withdrawal = await eventually(() => updatesTo(peerA).find((u) => u.withdrawnRoutes.includes('test.bnet')))
    expect(withdrawal.newRoutes.some((r) => r.prefix === 'test.bnet')).toBe(false)
    expect(peerView(peerA).has('test.bnet')).toBe(false)
    const res = await sendIlp(farm.url, 'alice', prepareTo('test.bnet.carol', '10', knownCondition()))
    expect((res.packet?.data as IlpReject).code).toBe('F02')
  })

  it('drops routes through its own address (loop) and routes for its own prefix', async () => {
    expect(
      await announceFromB([
        { prefix: 'test.loop', path: ['test.bnet', FARM_ADDRESS, 'test.x'] },
        { prefix: `${FARM_ADDRESS}.bob`, path: ['test.bnet'] },
        { prefix: FARM_ADDRESS, path: ['test.bnet'] },
        { prefix: 'test.fine', path: ['test.bnet', 'test.fine'] },
      ]),
    ).toBe('fulfilled')
    expect(await candidatesOf('test.loop')).toEqual({})
    expect((await candidatesOf(`${FARM_ADDRESS}.bob`)).peerb).toBeUndefined()
    expect((await candidatesOf(FARM_ADDRESS)).peerb).toBeUndefined()
    expect((await candidatesOf('test.fine')).peerb?.path).toEqual(['test.bnet', 'test.fine'])
  })

  it('rejects route messages from accounts not allowed to send them (F00), other peer.* stays F02', async () => {
    const update = serializeCcpRouteUpdateRequest({
      routingTableId: randomUUID(),
      currentEpochIndex: 1,
      fromEpochIndex: 0,
      toEpochIndex: 1,
      holdDownTime: 30_000,
      speaker: 'test.c',
      newRoutes: [{ prefix: 'test.c', path: ['test.c'], auth: Buffer.alloc(32), props: [] }],
      withdrawnRoutes: [],
    })
    const fromC = await sendIlp(farm.url, 'peerc', update)
    expect((fromC.packet?.data as IlpReject).code).toBe('F00')
    expect(await candidatesOf('test.c')).toEqual({})
    const control = serializeCcpRouteControlRequest({ mode: Mode.MODE_SYNC, lastKnownRoutingTableId: randomUUID(), lastKnownEpoch: 0, features: [] })
    expect((((await sendIlp(farm.url, 'peerc', control)).packet?.data) as IlpReject).code).toBe('F00')
    expect((((await sendIlp(farm.url, 'alice', update)).packet?.data) as IlpReject).code).toBe('F00')
    const other = await sendIlp(farm.url, 'peera', prepareTo('peer.something', '0', knownCondition()))
    expect((other.packet?.data as IlpReject).code).toBe('F02')
  })

  it('follows route control: IDLE stops the updates, SYNC with its table id and epoch resumes from there, another id gets the full table', async () => {
    const control = (mode: Mode, tableId: string, epoch: number) =>
      sendIlp(farm.url, 'peera', serializeCcpRouteControlRequest({ mode, lastKnownRoutingTableId: tableId, lastKnownEpoch: epoch, features: [] }))
    const last = updatesTo(peerA).at(-1)!
    expect((await control(Mode.MODE_IDLE, last.routingTableId, last.toEpochIndex)).packet?.type).toBe(13)
    await new Promise((r) => setTimeout(r, INTERVAL)) // one already under way may still arrive
    const idleCount = updatesTo(peerA).length
    await new Promise((r) => setTimeout(r, INTERVAL * 3))
    expect(updatesTo(peerA).length).toBe(idleCount)

    // SYNC, knowing epoch 1 of this table: a delta from 1
    await control(Mode.MODE_SYNC, last.routingTableId, 1)
    const delta = await eventually(() => updatesTo(peerA)[idleCount])
    expect(delta.fromEpochIndex).toBe(1)
    expect(delta.toEpochIndex).toBe(delta.currentEpochIndex)

    // SYNC with another table id: from 0, the whole table
    const count = updatesTo(peerA).length
    await control(Mode.MODE_SYNC, randomUUID(), 7)
    const full = await eventually(() => updatesTo(peerA).slice(count).find((u) => u.fromEpochIndex === 0))
    expect(full.newRoutes.map((r) => r.prefix)).toContain(FARM_ADDRESS)
  })

  it('expires learned routes that are not refreshed, and withdraws them from the others', async () => {
    // before the update is sent: its hold-down (400 ms) counts from when the farm applies it, later than this
    const sentAt = Date.now()
    expect(await announceFromB([{ prefix: 'test.short', path: ['test.bnet', 'test.short'] }], [], 400)).toBe('fulfilled')
    expect((await candidatesOf('test.short')).peerb?.source).toBe('learned')
    await eventually(() => peerView(peerA).has('test.short'))
    const gone = async () => Object.keys(await candidatesOf('test.short')).length === 0
    while (!(await gone())) {
      if (Date.now() - sentAt > 5000) throw new Error('the learned route did not expire')
      await new Promise((r) => setTimeout(r, 50))
    }
    // never before its hold-down (the farm and this test share one clock)
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(400)
    await eventually(() => !peerView(peerA).has('test.short'))
  })

  it('a new table id from the peer forgets what it said under the old one; a gap asks it again', async () => {
    expect((await candidatesOf('test.fine')).peerb?.source).toBe('learned')
    const res = await sendIlp(
      farm.url,
      'peerb',
      serializeCcpRouteUpdateRequest({
        routingTableId: randomUUID(),
        currentEpochIndex: 9,
        fromEpochIndex: 5, // we have nothing of this table: a gap
        toEpochIndex: 9,
        holdDownTime: 30_000,
        speaker: 'test.bnet',
        newRoutes: [{ prefix: 'test.gap', path: ['test.bnet'], auth: Buffer.alloc(32), props: [] }],
        withdrawnRoutes: [],
      }),
    )
    expect(res.packet?.type).toBe(13)
    expect(await candidatesOf('test.fine')).toEqual({})
    expect(await candidatesOf('test.gap')).toEqual({})
    const controls = () => peerB.received.filter((r) => r.prepare.destination === CCP_CONTROL_DESTINATION).length
    const before = controls()
    await eventually(() => controls() > before)
    const req = deserializeCcpRouteControlRequestPayload(peerB.received.filter((r) => r.prepare.destination === CCP_CONTROL_DESTINATION).at(-1)!.prepare.data)
    expect(req.lastKnownEpoch).toBe(0)
  })
})
