import { deserializeIlpPrepare, deserializeIlpReject, type IlpPrepare } from 'ilp-packet'
import { deserializeIldcpResponse, serializeIldcpRequest } from 'ilp-protocol-ildcp'
import { describe, expect, it } from 'vitest'
import { IlpRejection } from '../../../src/packet/reject.js'
import { answerIldcp, ILDCP_DESTINATION } from '../../../src/packet/steps/ildcp.js'
import { accountOf, arrived } from './core.js'

const request = (): IlpPrepare => deserializeIlpPrepare(serializeIldcpRequest({ expiresAt: new Date(Date.now() + 10_000) }))

describe('ildcp step', () => {
  it('tells a child its address under the farm, its asset code and scale', async () => {
    const child = accountOf('carol', { assetCode: 'EUR', assetScale: 2 })
    const prepare = request()
    expect(prepare.destination).toBe(ILDCP_DESTINATION)
    const reply = await answerIldcp(arrived(child, prepare), { ilpAddress: 'test.farm' })
    expect(deserializeIldcpResponse(reply)).toEqual({ clientAddress: 'test.farm.carol', assetCode: 'EUR', assetScale: 2 })
  })

  it('a peer or a parent gets F02: they have their own address', async () => {
    for (const relation of ['peer', 'parent'] as const) {
      const ctx = arrived(accountOf('pat', { relation }), request())
      await expect(answerIldcp(ctx, { ilpAddress: 'test.farm' })).rejects.toThrow(new IlpRejection('F02', 'peer.config is only served to child accounts'))
    }
  })

  it('a child’s peer.config without the peer-protocol condition gets the farm’s F00', async () => {
    const prepare = { ...request(), executionCondition: Buffer.alloc(32, 9) }
    const reply = await answerIldcp(arrived(accountOf('carol'), prepare), { ilpAddress: 'test.farm' })
    expect(deserializeIlpReject(reply)).toMatchObject({
      code: 'F00',
      triggeredBy: 'test.farm',
      message: 'packet does not contain correct condition for a peer protocol request.',
    })
  })
})
