import { randomUUID } from 'node:crypto'
import { deserializeIlpReject, serializeIlpPrepare } from 'ilp-packet'
import { Redis } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { admitAsyncPrepare } from '../../../src/packet/pipeline.js'
import { NotAPrepareError } from '../../../src/packet/steps/parse.js'
import { claimRejection, claimRequestId } from '../../../src/packet/steps/request-id.js'
import { OutgoingClient } from '../../../src/peers/outgoing.js'
import { Keys } from '../../../src/store/keys.js'
import { RequestIds, SYNC_TOMBSTONE } from '../../../src/store/request-ids.js'
import { startTestRedis, type TestRedis } from '../../helpers/redis.js'
import { accountInput, startCore, type TestCore } from './core.js'

let redis: TestRedis
let core: TestCore
const log = pino({ level: 'silent' })
const outgoing = new OutgoingClient()

beforeAll(async () => {
  redis = await startTestRedis()
  core = await startCore(redis.url, [accountInput('alice'), accountInput('bob', { outgoing: { url: 'http://127.0.0.1:9/ilp' } })])
})
afterAll(async () => {
  await outgoing.close()
  await core?.close()
  await redis?.close()
})

const inTenSeconds = () => Date.now() + 10_000

describe('request-id step', () => {
  it('claims an id once per account: the second claim of it is replayed, another account’s is its own', async () => {
    const id = randomUUID()
    expect(await claimRequestId('alice', id, inTenSeconds(), SYNC_TOMBSTONE, core)).toBe('claimed')
    expect(await claimRequestId('alice', id, inTenSeconds(), SYNC_TOMBSTONE, core)).toBe('replayed')
    expect(await claimRequestId('bob', id, inTenSeconds(), SYNC_TOMBSTONE, core)).toBe('claimed')
  })

  it('the claim keeps its tombstone: an async packet’s Callback-Url, found again by the sweeper’s reject', async () => {
    const id = randomUUID()
    expect(await claimRequestId('alice', id, inTenSeconds(), 'https://wallet.example/cb', core)).toBe('claimed')
    expect(await core.requestIds.callbackUrl('alice', id)).toBe('https://wallet.example/cb')
    const sync = randomUUID()
    await claimRequestId('alice', sync, inTenSeconds(), SYNC_TOMBSTONE, core)
    expect(await core.requestIds.callbackUrl('alice', sync)).toBeUndefined()
  })

  it('an account over its Request-Id limit: too-many, and nothing claimed', async () => {
    const requestIds = new RequestIds(core.redis, new Keys('rid-limit:'), { maxHoldTimeMs: 30_000, maxPerAccount: 2 })
    const deps = { requestIds, log }
    expect(await claimRequestId('alice', randomUUID(), inTenSeconds(), SYNC_TOMBSTONE, deps)).toBe('claimed')
    expect(await claimRequestId('alice', randomUUID(), inTenSeconds(), SYNC_TOMBSTONE, deps)).toBe('claimed')
    const third = randomUUID()
    expect(await claimRequestId('alice', third, inTenSeconds(), SYNC_TOMBSTONE, deps)).toBe('too-many')
    expect(await core.redis.exists(new Keys('rid-limit:').requestId('alice', third))).toBe(0)
  })

  it('a store that cannot be reached: failed', async () => {
    const down = new Redis({ port: 9, host: '127.0.0.1', lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 })
    try {
      const deps = { requestIds: new RequestIds(down, new Keys('down:')), log }
      expect(await claimRequestId('alice', randomUUID(), inTenSeconds(), SYNC_TOMBSTONE, deps)).toBe('failed')
    } finally {
      down.disconnect()
    }
  })

  it('the rejects of an id not claimed: F00 seen before, T05 over the limit, T00 store failed', () => {
    expect([claimRejection('replayed').code, claimRejection('replayed').message]).toEqual(['F00', 'duplicate request id'])
    expect([claimRejection('too-many').code, claimRejection('too-many').message]).toEqual(['T05', 'too many request ids for this account; retry later'])
    expect([claimRejection('failed').code, claimRejection('failed').message]).toEqual(['T00', 'internal error: balance store unavailable'])
  })
})

describe('the async entry claims through the same step', () => {
  const deps = () => ({ ...core, transports: { sync: outgoing, async: outgoing } })
  const raw = (expiresAt: Date) =>
    serializeIlpPrepare({ amount: '0', destination: 'test.farm.nobody', executionCondition: Buffer.alloc(32, 3), expiresAt, data: Buffer.alloc(0) })

  it('claims the Request-Id with the Callback-Url before the packet goes on; the same id again is replayed', async () => {
    const id = randomUUID()
    const expiresAt = new Date(inTenSeconds())
    const admission = await admitAsyncPrepare(core.account('alice'), raw(expiresAt), id, 'https://wallet.example/cb', deps())
    expect(admission.claim).toBe('claimed')
    expect(await core.requestIds.callbackUrl('alice', id)).toBe('https://wallet.example/cb')
    if (admission.claim !== 'claimed') throw new Error('unreachable')
    expect(admission.expiresAtMs).toBe(expiresAt.getTime())
    // the rest of the pipeline: nobody is no account, so no route
    expect(deserializeIlpReject(await admission.answer)).toMatchObject({ code: 'F02', message: 'no route to test.farm.nobody', triggeredBy: 'test.farm' })
    expect((await admitAsyncPrepare(core.account('alice'), raw(expiresAt), id, 'https://wallet.example/cb', deps())).claim).toBe('replayed')
  })

  it('a Prepare whose contents do not parse still claims its id, and its answer is F01 with one callback attempt', async () => {
    const id = randomUUID()
    const before = Date.now()
    const admission = await admitAsyncPrepare(core.account('alice'), Buffer.from([12, 3, 1, 2, 3]), id, 'https://wallet.example/cb', deps())
    if (admission.claim !== 'claimed') throw new Error(`claim: ${admission.claim}`)
    expect(admission.expiresAtMs).toBeGreaterThanOrEqual(before)
    expect(admission.expiresAtMs).toBeLessThanOrEqual(Date.now())
    expect(deserializeIlpReject(await admission.answer)).toMatchObject({ code: 'F01', message: 'invalid packet: Tried to read 8 bytes, but only 3 bytes available' })
    expect(await core.requestIds.callbackUrl('alice', id)).toBe('https://wallet.example/cb')
  })

  it('a body that is no Prepare claims nothing: NotAPrepareError (HTTP 400)', async () => {
    const id = randomUUID()
    await expect(admitAsyncPrepare(core.account('alice'), Buffer.from('hello'), id, 'https://wallet.example/cb', deps())).rejects.toBeInstanceOf(NotAPrepareError)
    expect(await core.requestIds.callbackUrl('alice', id)).toBeUndefined()
  })
})
