import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Type } from 'ilp-packet'
import type { Cluster } from 'ioredis'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type ClusterNode, type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { Keys } from '../../src/store/keys.js'
import { connectRedis, type RedisTarget } from '../../src/store/redis.js'
import { account, adminGet, adminSend, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { recordsLeft } from '../helpers/in-flight.js'
import { runLoad, startReceiver, summarize, type Receiver } from '../helpers/load.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'

/**
 * The packet path on a real Redis Cluster (3 masters, each with two replicas,
 * on loopback: a promoted replica still has one, which `durability: replica` needs): two workers, accounts on different masters, every script in
 * one slot (a cross-slot call is refused by the cluster, and would fail the
 * packets here), then a master SIGKILLed under load.
 */
let cluster: LocalCluster
let client: Cluster
let peer: TestPeer
let receiver: Receiver
const farms: TestFarm[] = []
const PREFIX = 'cl:'
const keys = new Keys(PREFIX)
const target = (): RedisTarget => ({ cluster: [...cluster.seeds] })
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

const ACCOUNTS = () => [
  account('alice', { minBalance: '-1000000000', incoming: { token: 'alice-token' } }),
  account('carol', { minBalance: '0', incoming: { token: 'carol-token' } }),
  account('bob', { relation: 'peer', outgoing: { url: peer.url }, routes: ['test.bob'], settleThreshold: '1000', settleTo: '0' }),
  account('receiver', { relation: 'peer', outgoing: { url: receiver.url }, routes: ['test.receiver'] }),
]

beforeAll(async () => {
  ;[cluster, peer, receiver] = await Promise.all([
    startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-pcluster-')), masters: 3, replicasPerMaster: 2, nodeTimeoutMs: 1_000 }),
    startTestPeer(fulfillKnown),
    startReceiver(20),
  ])
  client = (await connectRedis(target(), { commandTimeoutMs: 2_000 })) as Cluster
  const config = { redis: { keyPrefix: PREFIX }, farm: { heartbeatIntervalMs: 200, heartbeatTtlMs: 1_000, leaderLeaseMs: 2_000, sweepIntervalMs: 200 } }
  for (const shard of [0, 1]) farms.push(await startTestFarm(target(), ACCOUNTS(), config, { shard }))
}, 120_000)

afterAll(async () => {
  for (const farm of farms) await farm.close().catch(() => undefined)
  client?.disconnect()
  await Promise.all([peer?.close(), receiver?.close()])
  await cluster?.stop()
})

async function masterOf(key: string): Promise<ClusterNode> {
  const slot = Number(await client.cluster('KEYSLOT', key))
  const slots = await client.cluster('SLOTS')
  const range = slots.find(([from, to]) => slot >= from && slot <= to)!
  return cluster.nodes.find((n) => n.port === range[2]![1])!
}

const balanceSum = async (ids: string[]) => (await Promise.all(ids.map((id) => balanceOf(farms[0]!.url, id)))).reduce((a, b) => a + BigInt(b), 0n)

describe('the packet path on a Redis Cluster', () => {
  it('the accounts live on different masters, and packets through either worker are fulfilled, refused or refunded exactly', async () => {
    const masters = new Set((await Promise.all(['alice', 'bob', 'receiver'].map((id) => masterOf(keys.account(id))))).map((n) => n.port))
    expect(masters.size).toBeGreaterThan(1)
    for (const [i, farm] of farms.entries()) {
      for (let n = 0; n < 10; n++) {
        const reply = await sendIlp(farm.url, 'alice', prepareTo('test.bob.x', String(10 + i), knownCondition()))
        expect(reply.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
      }
    }
    expect(await balanceOf(farms[0]!.url, 'alice')).toBe('-210')
    expect(await balanceOf(farms[1]!.url, 'bob')).toBe('210')
    // unknown destination: F02; no balance: T04; neither moves anything
    expect((await sendIlp(farms[0]!.url, 'alice', prepareTo('test.nowhere', '5', knownCondition()))).packet).toMatchObject({ data: { code: 'F02' } })
    expect((await sendIlp(farms[1]!.url, 'carol', prepareTo('test.bob.x', '5', knownCondition()))).packet).toMatchObject({ data: { code: 'T04' } })
    // a duplicate packet id in flight: F00 (the second copy of one Request-Id)
    expect(await balanceSum(['alice', 'bob', 'carol'])).toBe(0n)
    expect(await recordsLeft(client, PREFIX)).toBe(0)
  })

  it('deposits, withdrawals and the settlement trigger work across the slots', async () => {
    const deposit = await adminSend<{ balance: string }>(farms[0]!.url, 'POST', '/admin/accounts/carol/deposits', { amount: '100' }, { headers: { 'idempotency-key': 'cl-d1' } })
    expect(deposit.status).toBeLessThan(300)
    expect(await balanceOf(farms[1]!.url, 'carol')).toBe('100')
    for (let n = 0; n < 10; n++) {
      expect((await sendIlp(farms[1]!.url, 'carol', prepareTo('test.bob.y', '10', knownCondition()))).packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    }
    expect((await sendIlp(farms[1]!.url, 'carol', prepareTo('test.bob.y', '1', knownCondition()))).packet).toMatchObject({ data: { code: 'T04' } })
    // bob went over its settleThreshold (1000) with the packets above and earlier: one request
    for (let n = 0; n < 80; n++) await sendIlp(farms[n % 2]!.url, 'alice', prepareTo('test.bob.z', '10', knownCondition()))
    const requests = async () => (await adminGet<Array<{ account: string; amount: string }>>(farms[0]!.url, '/admin/settlements')).json
    const deadline = Date.now() + 5_000
    while ((await requests()).length === 0 && Date.now() < deadline) await sleep(50)
    expect((await requests()).filter((r) => r.account === 'bob')).toHaveLength(1)
    const withdrawal = await adminSend(farms[1]!.url, 'POST', '/admin/accounts/carol/withdrawals', { amount: '1' }, { headers: { 'idempotency-key': 'cl-w1' } })
    expect(withdrawal.status).toBe(422)
    expect(await recordsLeft(client, PREFIX)).toBe(0)
  })

  it('an account and a route made through one worker are used by the other at once', async () => {
    const created = await adminSend<{ token: string }>(farms[0]!.url, 'POST', '/admin/accounts', {
      id: 'dave',
      relation: 'child',
      assetCode: 'USD',
      assetScale: 6,
      minBalance: '-1000',
    })
    expect(created.status).toBe(201)
    expect((await adminSend(farms[0]!.url, 'PUT', '/admin/routes/g.more', { account: 'bob' })).status).toBeLessThan(300)
    const deadline = Date.now() + 3_000
    let reply
    do {
      reply = await sendIlp(farms[1]!.url, 'dave', prepareTo('g.more.x', '7', knownCondition()), { token: created.json.token })
      if (reply.packet?.type === Type.TYPE_ILP_FULFILL) break
      await sleep(50)
    } while (Date.now() < deadline)
    expect(reply.packet?.type).toBe(Type.TYPE_ILP_FULFILL)
    expect(await balanceOf(farms[1]!.url, 'dave')).toBe('-7')
  })
})

/** A master that still has a replica, and an account id (`<base><n>`) whose slot it serves. */
async function victimWithReplica(prefix: string, base: string): Promise<{ node: ClusterNode; id: string }> {
  const nodes = ((await client.cluster('NODES')) as string).split('\n').filter(Boolean).map((line) => line.split(' '))
  const withReplica = new Set(
    nodes.filter((n) => n[2]!.includes('master') && !n[2]!.includes('fail') && nodes.some((r) => r[3] === n[0] && !r[2]!.includes('fail'))).map((n) => Number(n[1]!.split(':')[1]!.split('@')[0])),
  )
  for (let n = 0; ; n++) {
    const node = await masterOf(new Keys(prefix).account(`${base}${n}`))
    if (withReplica.has(node.port)) return { node, id: `${base}${n}` }
  }
}

describe('a master SIGKILLed under load', () => {
  // durability replica first: each run kills a master that still has a replica
  it.each(['replica', 'none'] as const)(
    'durability %s: the replica is promoted and the farm goes on; after the longest expiry nothing is left in flight',
    async (durability) => {
      const EXPIRES_IN_MS = 4_000
      const prefix = `fo-${durability}:`
      await cluster.waitHealthy(30_000)
      const { node: victim, id: sender } = await victimWithReplica(prefix, 'sender')
      const own: TestFarm[] = []
      const config = {
        redis: { keyPrefix: prefix, durability, durabilityTimeoutMs: 1_000 },
        farm: { heartbeatIntervalMs: 200, heartbeatTtlMs: 1_000, leaderLeaseMs: 2_000, sweepIntervalMs: 200 },
      }
      const accounts = [
        account(sender, { minBalance: '-1000000000', incoming: { token: 'sender-token' } }),
        account('receiver', { relation: 'peer', outgoing: { url: receiver.url }, routes: ['test.receiver'] }),
      ]
      for (const shard of [0, 1]) own.push(await startTestFarm(target(), accounts, config, { shard }))
      try {
        const tallyBefore = [...receiver.fulfilled.values()].reduce((a, b) => a + b, 0n)
        // a deposit is acknowledged once a replica has it (replica) or at once (none)
        const deposit = await adminSend<{ balance: string }>(own[0]!.url, 'POST', `/admin/accounts/${sender}/deposits`, { amount: '5' }, { headers: { 'idempotency-key': `fo-${durability}` } })
        expect(deposit.status).toBe(200)
        expect(deposit.json.balance).toBe('5')
        const load = Promise.all(
          own.map((farm) =>
            runLoad({ farmUrl: farm.url, account: sender, token: 'sender-token', destination: 'test.receiver.x', concurrency: 25, durationMs: 8_000, expiresInMs: EXPIRES_IN_MS }),
          ),
        )
        await sleep(2_500)
        cluster.kill(victim)
        const killedAt = Date.now()
        const sent = (await load).flat()
        const lastExpiry = Math.max(...sent.map((p) => p.sentAt)) + EXPIRES_IN_MS
        const fulfilledAfter = sent.filter((p) => p.outcome === 'fulfill' && p.sentAt > killedAt + 5_000).length
        // Everything in flight resolves: the workers' own retries and audits, and the sweeper.
        const scoped = (await connectRedis(target(), { commandTimeoutMs: 2_000 })) as Cluster
        let left = -1
        try {
          while (Date.now() < lastExpiry + 20_000) {
            left = await recordsLeft(scoped, prefix).catch(() => -1)
            if (left === 0 && Date.now() > lastExpiry) break
            await sleep(200)
          }
        } finally {
          scoped.disconnect()
        }
        console.log(`durability ${durability}: ${summarize(sent)}; records left ${left}`)
        const fulfilledSeen = sent.filter((p) => p.outcome === 'fulfill').reduce((a, p) => a + p.amount, 0n)
        const tally = [...receiver.fulfilled.values()].reduce((a, b) => a + b, 0n) - tallyBefore
        const senderBalance = BigInt(await balanceOf(own[0]!.url, sender)) - 5n
        const receiverBalance = BigInt(await balanceOf(own[0]!.url, 'receiver'))
        const inFlightAtKill = sent.filter((p) => p.sentAt <= killedAt && p.doneAt >= killedAt).reduce((a, p) => a + p.amount, 0n)
        console.log(
          `cluster failover, durability ${durability}: ${sent.length} packets (${summarize(sent)}); fulfilled after the switch ${fulfilledAfter}; ` +
            `sender ${senderBalance}, receiver ${receiverBalance} (sum ${senderBalance + receiverBalance}); senders saw ${fulfilledSeen} fulfilled; ` +
            `the receiver gave ${tally}; in flight at the kill ${inFlightAtKill}`,
        )
        expect(left).toBe(0)
        expect(fulfilledAfter).toBeGreaterThan(0) // the farm went on after the promotion
        const drift = senderBalance + receiverBalance
        if (durability === 'replica') {
          // every Fulfill a sender received is in the balances, and nothing else moved
          expect(receiverBalance).toBe(fulfilledSeen)
          expect(senderBalance).toBe(-fulfilledSeen)
          // the receiver gave what the balances hold, and the fulfills the farm refused as too late (R00)
          const gaveLate = sent.filter((p) => p.outcome !== 'fulfill' && receiver.fulfilled.has(p.conditionHex)).reduce((a, p) => a + p.amount, 0n)
          const gave = sent.filter((p) => receiver.fulfilled.has(p.conditionHex)).reduce((a, p) => a + p.amount, 0n)
          expect(gave - gaveLate).toBe(receiverBalance)
        } else {
          expect(drift < 0n ? -drift : drift).toBeLessThanOrEqual(inFlightAtKill)
        }
      } finally {
        for (const farm of own) await farm.close().catch(() => undefined)
      }
    },
    120_000,
  )
})
