import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { Client } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import { cleanEnv, type CliRun, killAllClis, runCli } from '../helpers/cli.js'
import { account, ADMIN_TOKEN, adminSend, prepareTo, sendIlp } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Accounts added and deleted at runtime on a real farm: `ilp-farm start` with
 * two node:cluster workers sharing the port. Each request goes over a new
 * connection, so the cluster hands them to both workers; /health names the
 * worker (x-ilp-farm-shard), and the packet goes over that same connection.
 */
let redis: TestRedis
let bob: TestPeer
let farm: CliRun
let url: string
let tmp: string

beforeAll(async () => {
  redis = await startTestRedis()
  bob = await startTestPeer(fulfillKnown)
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-rt-'))
  const file = join(tmp, 'farm.yaml')
  writeFileSync(
    file,
    stringify({
      ilpAddress: 'test.farm',
      http: { host: '127.0.0.1', port: 0 },
      workers: 2,
      redis: { url: redis.url, keyPrefix: 'cluster:' },
      admin: { token: ADMIN_TOKEN },
      log: { level: 'warn' },
      accounts: [account('alice', { minBalance: '-1000000' }), account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] })],
    }),
  )
  farm = runCli(['start', '--config', file], { env: cleanEnv() })
  url = (await farm.waitFor(/listening on (http:\/\/\S+)/, 60_000))[1]!
}, 90_000)

afterAll(async () => {
  await killAllClis()
  await bob?.close()
  await redis?.close()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

/** On a new connection: which worker it reached, and what that worker answered to a packet from `from`. */
async function viaNewConnection(from: string, token: string, destination: string): Promise<{ shard: string; type: number; code?: string }> {
  const client = new Client(url, { pipelining: 1 })
  try {
    const health = await client.request({ path: '/health', method: 'GET' })
    await health.body.dump()
    const answer = await sendIlp(url, from, prepareTo(destination, '10', knownCondition()), { token, dispatcher: client })
    const data = answer.packet?.data as { code?: string } | undefined
    return { shard: String(health.headers['x-ilp-farm-shard']), type: answer.packet?.type ?? answer.status, ...(data?.code ? { code: data.code } : {}) }
  } finally {
    await client.close()
  }
}

describe('runtime accounts on a two-worker farm', () => {
  it('an account added through one worker sends through both within a second; deleted, both refuse it', async () => {
    const created = await adminSend<{ token: string }>(url, 'POST', '/admin/accounts', { id: 'carol', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000' })
    expect(created.status).toBe(201)
    const addedAt = Date.now()
    const seen = new Map<string, number>()
    for (let i = 0; i < 12; i++) {
      const r = await viaNewConnection('carol', created.json.token, 'test.bob.x')
      expect(r, JSON.stringify(r)).toMatchObject({ type: Type.TYPE_ILP_FULFILL })
      seen.set(r.shard, (seen.get(r.shard) ?? 0) + 1)
    }
    expect(Date.now() - addedAt).toBeLessThan(1000)
    expect([...seen.keys()].sort()).toEqual(['0', '1']) // both workers took carol's packets

    expect((await adminSend(url, 'DELETE', '/admin/accounts/carol')).status).toBe(200)
    const refusedBy = new Set<string>()
    for (let i = 0; i < 8; i++) {
      const r = await viaNewConnection('carol', created.json.token, 'test.bob.x')
      expect(r.type).toBe(401)
      refusedBy.add(r.shard)
    }
    expect([...refusedBy].sort()).toEqual(['0', '1'])
    // 12 packets of 10 before the deletion: the balance stays on record
    const stored = await redis.client.hgetall('cluster:{acct:carol}')
    const balance = Object.entries(stored)
      .filter(([field]) => field === 'cold' || field.startsWith('hot:'))
      .reduce((sum, [, value]) => sum + BigInt(value), 0n)
    expect(balance).toBe(-120n)
  }, 30_000)
})
