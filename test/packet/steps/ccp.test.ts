import { deserializeIlpFulfill, deserializeIlpPrepare, type IlpPrepare, Type } from 'ilp-packet'
import { Redis } from 'ioredis'
import {
  CCP_UPDATE_DESTINATION,
  Mode,
  PEER_PROTOCOL_FULFILLMENT,
  serializeCcpRouteControlRequest,
  serializeCcpRouteUpdateRequest,
} from 'ilp-protocol-ccp'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../../src/config/load.js'
import { IlpRejection } from '../../../src/packet/reject.js'
import { answerCcp, isCcpDestination } from '../../../src/packet/steps/ccp.js'
import { CcpResponder } from '../../../src/routing/ccp-responder.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, accountOf, arrived } from './core.js'

let redis: TestRedis
let client: Redis
let ccp: CcpResponder

beforeAll(async () => {
  redis = await startTestRedis()
  client = new Redis(redis.url)
  const config = parseConfig({ ilpAddress: 'test.farm', admin: { token: 'admin-token-for-tests' }, redis: { keyPrefix: 'ccp-step:' }, accounts: [accountInput('pat', { relation: 'peer' })] }, 'test', {})
  ccp = new CcpResponder({ config, redis: client, log: pino({ level: 'silent' }) })
})
afterAll(async () => {
  client?.disconnect()
  await redis?.close()
})

const control = (): IlpPrepare =>
  deserializeIlpPrepare(
    serializeCcpRouteControlRequest({ mode: Mode.MODE_SYNC, lastKnownRoutingTableId: '3b069822-a754-4e44-8a60-0f9f7084144d', lastKnownEpoch: 0, features: [] }),
  )
const update = (): IlpPrepare =>
  deserializeIlpPrepare(
    serializeCcpRouteUpdateRequest({
      speaker: 'test.pat',
      routingTableId: '3b069822-a754-4e44-8a60-0f9f7084144d',
      holdDownTime: 45_000,
      currentEpochIndex: 1,
      fromEpochIndex: 0,
      toEpochIndex: 1,
      newRoutes: [{ prefix: 'test.pat', path: ['test.pat'], auth: Buffer.alloc(32), props: [] }],
      withdrawnRoutes: [],
    }),
  )

describe('ccp step', () => {
  it('knows the two route destinations and no other', () => {
    expect(isCcpDestination('peer.route.control')).toBe(true)
    expect(isCcpDestination(CCP_UPDATE_DESTINATION)).toBe(true)
    expect(isCcpDestination('peer.config')).toBe(false)
    expect(isCcpDestination('test.farm.peer.route.control')).toBe(false)
  })

  it('route control from an account we send routes to: the peer-protocol fulfillment', async () => {
    const reply = await answerCcp(arrived(accountOf('pat', { relation: 'peer', sendRoutes: true }), control()), { ccp })
    expect(reply[0]).toBe(Type.TYPE_ILP_FULFILL)
    expect(deserializeIlpFulfill(reply).fulfillment).toEqual(PEER_PROTOCOL_FULFILLMENT)
  })

  it('route update from an account we take routes from: the peer-protocol fulfillment', async () => {
    const reply = await answerCcp(arrived(accountOf('pat', { relation: 'peer', receiveRoutes: true }), update()), { ccp })
    expect(deserializeIlpFulfill(reply).fulfillment).toEqual(PEER_PROTOCOL_FULFILLMENT)
  })

  it('route control from an account we do not send routes to is F00', async () => {
    const ctx = arrived(accountOf('pat', { relation: 'peer', receiveRoutes: true }), control())
    await expect(answerCcp(ctx, { ccp })).rejects.toThrow(new IlpRejection('F00', 'rejecting route control: we are configured not to send routes to you'))
  })

  it('route update from an account we do not take routes from is F00', async () => {
    const ctx = arrived(accountOf('pat', { relation: 'peer', sendRoutes: true }), update())
    await expect(answerCcp(ctx, { ccp })).rejects.toThrow(new IlpRejection('F00', 'rejecting route update: we are configured not to receive routes from you'))
  })

  it('a route message with an amount is F01', async () => {
    const ctx = arrived(accountOf('pat', { relation: 'peer', sendRoutes: true }), { ...control(), amount: '1' })
    await expect(answerCcp(ctx, { ccp })).rejects.toThrow(new IlpRejection('F01', 'invalid packet: route messages carry amount 0'))
  })

  it('with route announcements off, any route message is F02', async () => {
    const ctx = arrived(accountOf('pat', { relation: 'peer', sendRoutes: true }), control())
    await expect(answerCcp(ctx, {})).rejects.toThrow(new IlpRejection('F02', 'no route to peer.route.control: route announcements are off'))
  })
})
