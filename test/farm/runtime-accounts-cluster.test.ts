import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { cleanEnv, killAllClis } from '../helpers/cli.js'
import { adminSend } from '../helpers/farm.js'
import type { TestPeer } from '../helpers/peer.js'
import { packetOnNewConnection, startTwoWorkerFarm } from '../helpers/two-worker-farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Accounts added and deleted at runtime on a real farm: `ilp-farm start` with
 * two node:cluster workers sharing the port. Each request goes over a new
 * connection, so the cluster hands them to both workers; /health names the
 * worker (x-ilp-farm-shard), and the packet goes over that same connection.
 */
let redis: TestRedis
let bob: TestPeer
let url: string
let tmp: string

beforeAll(async () => {
  redis = await startTestRedis()
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-rt-'))
  ;({ url, bob } = await startTwoWorkerFarm(tmp, { keyPrefix: 'cluster:', redis: { url: redis.url }, env: cleanEnv() }))
}, 90_000)

afterAll(async () => {
  await killAllClis()
  await bob?.close()
  await redis?.close()
  if (tmp) rmSync(tmp, { recursive: true, force: true })
})

describe('runtime accounts on a two-worker farm', () => {
  it('an account added through one worker sends through both within a second; deleted, both refuse it', async () => {
    const created = await adminSend<{ token: string }>(url, 'POST', '/admin/accounts', { id: 'carol', relation: 'child', assetCode: 'USD', assetScale: 6, minBalance: '-1000' })
    expect(created.status).toBe(201)
    const addedAt = Date.now()
    const seen = new Map<string, number>()
    for (let i = 0; i < 12; i++) {
      const r = await packetOnNewConnection(url, 'carol', created.json.token, 'test.bob.x')
      expect(r, JSON.stringify(r)).toMatchObject({ type: Type.TYPE_ILP_FULFILL })
      seen.set(r.shard, (seen.get(r.shard) ?? 0) + 1)
    }
    expect(Date.now() - addedAt).toBeLessThan(1000)
    expect([...seen.keys()].sort()).toEqual(['0', '1']) // both workers took carol's packets

    expect((await adminSend(url, 'DELETE', '/admin/accounts/carol')).status).toBe(200)
    const refusedBy = new Set<string>()
    for (let i = 0; i < 8; i++) {
      const r = await packetOnNewConnection(url, 'carol', created.json.token, 'test.bob.x')
      expect([r.status, r.type]).toEqual([401, undefined])
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
