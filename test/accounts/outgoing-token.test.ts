import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parseConfig } from '../../src/config/load.js'
import { account, adminGet, adminSend, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * An outgoing token can live outside Redis: in an environment variable of
 * the workers or in a file on their host. The next hop gets it; no key in
 * Redis holds it.
 */
let redis: TestRedis
let peer: TestPeer
let farm: TestFarm
const PREFIX = 'otok:'
const ENV_TOKEN = 'token-from-the-environment-4f1c'
const FILE_TOKEN = 'token-from-a-file-9d2e'

beforeAll(async () => {
  redis = await startTestRedis()
  peer = await startTestPeer(fulfillKnown)
  const file = join(mkdtempSync(join(tmpdir(), 'ilp-farm-otok-')), 'bob.token')
  writeFileSync(file, `${FILE_TOKEN}\n`, { mode: 0o600 })
  process.env.ILP_FARM_TEST_CARL_TOKEN = ENV_TOKEN
  farm = await startTestFarm(
    redis.url,
    [
      account('alice', { minBalance: '-1000000' }),
      account('bob', { relation: 'peer', outgoing: { url: `${peer.url}/bob`, tokenFile: file }, routes: ['test.bob'] }),
      account('carl', { relation: 'peer', outgoing: { url: `${peer.url}/carl`, tokenEnv: 'ILP_FARM_TEST_CARL_TOKEN' }, routes: ['test.carl'] }),
    ],
    { redis: { keyPrefix: PREFIX } },
  )
})

afterAll(async () => {
  await farm?.close()
  await peer?.close()
  await redis?.close()
  delete process.env.ILP_FARM_TEST_CARL_TOKEN
})

describe('outgoing tokens kept out of Redis', () => {
  it('the next hop gets the token from the file or the environment, and no Redis key holds it', async () => {
    for (const hop of ['bob', 'carl']) {
      expect((await sendIlp(farm.url, 'alice', prepareTo(`test.${hop}.x`, '5', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    }
    const auth = (path: string) => peer.received.find((r) => r.headers.authorization !== undefined && r.prepare.destination.startsWith(path))?.headers.authorization
    expect(auth('test.bob')).toBe(`Bearer ${FILE_TOKEN}`)
    expect(auth('test.carl')).toBe(`Bearer ${ENV_TOKEN}`)
    // every value of every key of the farm, read back: neither token is there (the reference is)
    const keys = await redis.client.keys(`${PREFIX}*`)
    const dump: string[] = []
    for (const key of keys) {
      const type = await redis.client.type(key)
      if (type === 'string') dump.push((await redis.client.get(key)) ?? '')
      else if (type === 'hash') dump.push(JSON.stringify(await redis.client.hgetall(key)))
    }
    const all = dump.join('\n')
    expect(all).toContain('ILP_FARM_TEST_CARL_TOKEN')
    expect(all).not.toContain(ENV_TOKEN)
    expect(all).not.toContain(FILE_TOKEN)
    // the admin view says there is a token, and where it comes from
    const { json } = await adminGet<{ outgoing: Record<string, unknown> }>(farm.url, '/admin/accounts/carl')
    expect(json.outgoing).toMatchObject({ hasToken: true, tokenEnv: 'ILP_FARM_TEST_CARL_TOKEN' })
  })

  it('one source at most: a token and a tokenFile together are refused, in the config and through the admin API', async () => {
    const bad = { url: 'http://127.0.0.1:1/', token: 't', tokenFile: '/tmp/x' }
    expect(() => parseConfig({ ilpAddress: 'test.farm', accounts: [account('x', { relation: 'peer', outgoing: bad })] }, 'test', {})).toThrow(/at most one of token, tokenEnv and tokenFile/)
    const created = await adminSend(farm.url, 'POST', '/admin/accounts', { id: 'dora', relation: 'peer', assetCode: 'USD', assetScale: 6, outgoing: bad })
    expect(created.status).toBe(400)
  })
})
