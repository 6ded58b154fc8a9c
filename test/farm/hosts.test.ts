import { hostname } from 'node:os'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { defaultHostId, hostIdOf } from '../../src/config/host-id.js'
import { parseConfig } from '../../src/config/load.js'
import { ensureHostIdFree, HostIdInUseError } from '../../src/farm/host-check.js'
import { Coordination } from '../../src/store/coordination.js'
import { Keys } from '../../src/store/keys.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Several hosts (supervisors) on one Redis: their heartbeats, the farm-wide
 * views of them, and a host id that is in use already. Real redis-server.
 */
const log = pino({ level: 'silent' })
let redis: TestRedis
let seq = 0

beforeAll(async () => {
  redis = await startTestRedis()
})
afterAll(async () => {
  await redis?.close()
})

const keys = () => new Keys(`h${++seq}:`)
const beatOf = (shard: number, bootId: string, fields: { pid?: number; supervisorPid?: number; host?: string; ttlMs?: number } = {}) => {
  const now = Date.now()
  return { shard, bootId, pid: fields.pid ?? 1, host: fields.host ?? 'm', supervisorPid: fields.supervisorPid, startedAt: now, beatAt: now, ttlMs: fields.ttlMs ?? 5000 }
}

describe('farm.hostId', () => {
  it('defaults to the hostname and the HTTP port; a host id is letters, digits and . _ : - only', () => {
    expect(defaultHostId(3000, 'myhost')).toBe('myhost:3000')
    expect(defaultHostId(3000, 'my host/with{odd}')).toBe('my-host-with-odd-:3000')
    const base = { ilpAddress: 'test.farm', http: { port: 7001 }, accounts: [{ id: 'alice', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 't' } }] }
    expect(hostIdOf(parseConfig(base))).toBe(defaultHostId(7001, hostname()))
    expect(hostIdOf(parseConfig({ ...base, farm: { hostId: 'eu-1.a:b_c' } }))).toBe('eu-1.a:b_c')
    for (const bad of ['a/b', '{x}', 'a b', '', 'x'.repeat(101)]) expect(() => parseConfig({ ...base, farm: { hostId: bad } })).toThrow(/hostId/)
  })

  it('worker ids: <hostId>/<shard>, read back; anything else (a bare shard id of an older farm) is not one', () => {
    expect(Keys.workerId('a:1', 3)).toBe('a:1/3')
    expect(Keys.parseWorkerId('a:1/3')).toEqual({ hostId: 'a:1', shard: 3 })
    for (const bad of ['3', '/3', 'a/', 'a/x', 'a/-1', 'a/1.5']) expect(Keys.parseWorkerId(bad)).toBeUndefined()
    const k = new Keys('p:')
    expect(k.worker('a:1', 3)).toBe('p:{farm}:worker:a:1/3')
    expect(k.workers).toBe('p:{farm}:workers')
  })
})

describe('two hosts on one Redis', () => {
  it('each host beats its own keys; every host reads all: by worker id, by boot id, per host, and the status with hosts and the leader', async () => {
    const k = keys()
    const a = new Coordination(redis.client, k, 'host-a:1')
    const b = new Coordination(redis.client, k, 'host-b:1')
    for (const shard of [0, 1]) {
      expect(await a.beat(beatOf(shard, `${shard}-aaa`))).toBe('')
      expect(await b.beat(beatOf(shard, `${shard}-bbb`))).toBe('') // same shard, another host: no collision
    }
    expect(await redis.client.get(k.worker('host-a:1', 0))).toContain('"hostId":"host-a:1"')
    expect((await redis.client.smembers(k.workers)).sort()).toEqual(['host-a:1/0', 'host-a:1/1', 'host-b:1/0', 'host-b:1/1'])

    const live = await b.liveWorkers()
    expect([...live.keys()].sort()).toEqual(['host-a:1/0', 'host-a:1/1', 'host-b:1/0', 'host-b:1/1'])
    expect(live.get('host-a:1/1')).toMatchObject({ hostId: 'host-a:1', shard: 1, bootId: '1-aaa' })
    expect(live.get(1)?.bootId).toBe('1-bbb') // a number: a shard of the host b speaks for
    expect((await a.liveWorkers()).get(1)?.bootId).toBe('1-aaa')
    expect([...(await a.liveOwners()).keys()].sort()).toEqual(['0-aaa', '0-bbb', '1-aaa', '1-bbb'])
    expect((await a.liveOwners()).get('0-bbb')).toMatchObject({ hostId: 'host-b:1', shard: 0 })
    expect((await a.liveWorkersOf('host-b:1')).map((w) => w.bootId)).toEqual(['0-bbb', '1-bbb'])

    expect(await a.acquireLease('1-bbb', 5000)).toBe('1-bbb')
    const status = await a.status()
    expect(status.leader).toBe('1-bbb')
    expect(status.leaderHostId).toBe('host-b:1')
    expect(status.hosts).toEqual([
      { hostId: 'host-a:1', workers: 2, leader: false },
      { hostId: 'host-b:1', workers: 2, leader: true },
    ])
    expect(status.workers.map((w) => [w.hostId, w.shard, w.leader])).toEqual([
      ['host-a:1', 0, false],
      ['host-a:1', 1, false],
      ['host-b:1', 0, false],
      ['host-b:1', 1, true],
    ])

    // a clean stop deletes only its own host's key
    expect(await a.stopBeat(0, '0-bbb')).toBe(false)
    expect(await a.stopBeat(0, '0-aaa')).toBe(true)
    expect([...(await b.liveWorkers()).keys()].sort()).toEqual(['host-a:1/1', 'host-b:1/0', 'host-b:1/1'])
  })
})

describe('a host id in use', () => {
  it('workers of another supervisor that keep beating: refused with HostIdInUseError', async () => {
    const k = keys()
    const other = new Coordination(redis.client, k, 'dup:1')
    const beat = () => other.beat(beatOf(0, '0-other', { supervisorPid: process.ppid + 1, ttlMs: 300 }))
    await beat()
    const timer = setInterval(() => void beat(), 100)
    try {
      const started = Date.now()
      const err = await ensureHostIdFree(new Coordination(redis.client, k, 'dup:1'), log).catch((e: unknown) => e)
      expect(err).toBeInstanceOf(HostIdInUseError)
      expect((err as Error).message).toMatch(/farm\.hostId "dup:1" is in use: 1 live worker of that host id run under another supervisor \(pid \d+ on m\)/)
      expect(Date.now() - started).toBeGreaterThanOrEqual(250) // it waited for a TTL first
      // another host id is free
      await ensureHostIdFree(new Coordination(redis.client, k, 'dup:2'), log)
    } finally {
      clearInterval(timer)
    }
  })

  it('beats left by a supervisor that died are waited out; beats of this supervisor are its own', async () => {
    const k = keys()
    await new Coordination(redis.client, k, 'restarted:1').beat(beatOf(0, '0-dead', { supervisorPid: process.ppid + 1, ttlMs: 400 }))
    const started = Date.now()
    await ensureHostIdFree(new Coordination(redis.client, k, 'restarted:1'), log)
    expect(Date.now() - started).toBeGreaterThanOrEqual(200)

    await new Coordination(redis.client, k, 'mine:1').beat(beatOf(0, '0-sibling', { host: hostname(), supervisorPid: process.ppid, ttlMs: 60_000 }))
    const at = Date.now()
    await ensureHostIdFree(new Coordination(redis.client, k, 'mine:1'), log)
    expect(Date.now() - at).toBeLessThan(200)
  })
})
