import {
  deserializeIlpFulfill,
  deserializeIlpPrepare,
  deserializeIlpReject,
  serializeIlpFulfill,
  serializeIlpPrepare,
  serializeIlpReject,
} from 'ilp-packet'
import { deserializeIldcpRequest, deserializeIldcpResponse, serializeIldcpRequest, serializeIldcpResponse } from 'ilp-protocol-ildcp'
import { describe, expect, it } from 'vitest'
import { amountTooLargeData, IlpRejection, rejectBuffer } from '../../src/packet/reject.js'

/** The vectors of ../shared/ILP-REFERENCE.md, through the codecs the farm uses. */
const hex = (s: string) => Buffer.from(s, 'hex')

const PREPARE =
  '0c68000000000000006b323031373132323330313231343035343974e1136dc71c9e5f283bec83461cbf1261c4014f72d48f8dd65453a0b84e7de10d6578616d706c652e616c696365205db343fdc41898f6df4202329139dc242dd0f558a811b46b28918fdab37c6cb0'
const FULFILL =
  '0d41c3866b48749ccf113b2e15c25d2407fbfc14476fe7296bb1bf1bcd9e6e41665020673febd78a33b28e1c0db14c9a06251a05fa831ed4ed91ebcd150e7249c2e600'
const REJECT =
  '0e414630310e6578616d706c652e75732e626f62276d697373696e672064657374696e6174696f6e2e206c65646765723d6578616d706c652e75732e06000000041041'
const ILDCP_REQUEST =
  '0c460000000000000000323031353036313630303031303030303066687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f29250b706565722e636f6e66696700'
const ILDCP_RESPONSE = '0d350000000000000000000000000000000000000000000000000000000000000000140e6578616d706c652e636c69656e740d0358414d'
const F08_REJECT = '0e244630380e746573742e636f6e6e6563746f72001000000000000000ff000000000000ffff'

describe('packet vectors decode and re-encode byte for byte', () => {
  it('Prepare', () => {
    const prepare = deserializeIlpPrepare(hex(PREPARE))
    expect(prepare.amount).toBe('107')
    expect(prepare.expiresAt.toISOString()).toBe('2017-12-23T01:21:40.549Z')
    expect(prepare.destination).toBe('example.alice')
    expect(prepare.data.length).toBe(32)
    expect(serializeIlpPrepare(prepare).toString('hex')).toBe(PREPARE)
  })

  it('Fulfill', () => {
    expect(serializeIlpFulfill(deserializeIlpFulfill(hex(FULFILL))).toString('hex')).toBe(FULFILL)
  })

  it('Reject', () => {
    const reject = deserializeIlpReject(hex(REJECT))
    expect(reject.code).toBe('F01')
    expect(reject.triggeredBy).toBe('example.us.bob')
    expect(serializeIlpReject(reject).toString('hex')).toBe(REJECT)
  })

  it('ILDCP request and response', () => {
    // the vector's expiry is in 2015, so read it as the Prepare it is
    const request = deserializeIlpPrepare(hex(ILDCP_REQUEST))
    expect(request).toMatchObject({ amount: '0', destination: 'peer.config' })
    expect(request.executionCondition.toString('hex')).toBe('66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925')
    expect(serializeIlpPrepare(request).toString('hex')).toBe(ILDCP_REQUEST)
    const fresh = serializeIldcpRequest({ expiresAt: new Date(Date.now() + 60_000) })
    expect(deserializeIldcpRequest(fresh).data).toEqual(Buffer.alloc(0))
    const response = deserializeIldcpResponse(hex(ILDCP_RESPONSE))
    expect(response).toEqual({ clientAddress: 'example.client', assetScale: 13, assetCode: 'XAM' })
    expect(serializeIldcpResponse(response).toString('hex')).toBe(ILDCP_RESPONSE)
  })

  it("F08 reject, as the farm's own reject builder makes it", () => {
    const built = rejectBuffer('test.connector', new IlpRejection('F08', '', amountTooLargeData('255', '65535')))
    expect(built.toString('hex')).toBe(F08_REJECT)
    expect(serializeIlpReject(deserializeIlpReject(hex(F08_REJECT))).toString('hex')).toBe(F08_REJECT)
  })

  it('F08 data holds UInt64 amounts above 2^53 exactly', () => {
    const data = amountTooLargeData('18446744073709551615', '9007199254740993')
    expect(data.toString('hex')).toBe('ffffffffffffffff' + '0020000000000001')
  })
})
