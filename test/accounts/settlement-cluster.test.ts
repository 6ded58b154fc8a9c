import { mkdtempSync, rmSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Cluster } from 'ioredis'
import { pino } from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { Adjustments } from '../../src/accounts/adjustments.js'
import { SETTLE_CHECK, Settlements } from '../../src/accounts/settlement.js'
import type { AccountConfig } from '../../src/config/schema.js'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { Keys } from '../../src/store/keys.js'
import { readBody } from '../helpers/peer.js'

/**
 * The settlement trigger on a real Redis Cluster (3 masters, no replicas):
 * every script keeps to one slot, so none is refused with CROSSSLOT though
 * the account and the farm's stream are on different masters; a crossing
 * and a request left after step 1 each reach the stream once (by the
 * account's next check, or by the leader), and the webhook gets them.
 */
let cluster: LocalCluster
let client: Cluster
let webhook: Server
let webhookUrl: string
const dataDir = mkdtempSync(join(tmpdir(), 'ilp-farm-settle-cluster-'))
const hooks: Array<{ key: string | undefined; body: Record<string, string> }> = []
const log = pino({ level: 'silent' })

beforeAll(async () => {
  cluster = await startLocalCluster({ dataDir, masters: 3, replicasPerMaster: 0 })
  client = new Cluster(cluster.seeds.map((url) => ({ host: '127.0.0.1', port: Number(new URL(url).port) })))
  webhook = createServer((req, res) => {
    void readBody(req).then((body) => {
      hooks.push({ key: req.headers['idempotency-key'] as string | undefined, body: JSON.parse(body.toString()) as Record<string, string> })
      res.end('ok')
    })
  })
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve))
  webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/settle`
}, 90_000)

afterAll(async () => {
  client?.disconnect()
  webhook?.close()
  await cluster?.stop()
  rmSync(dataDir, { recursive: true, force: true })
})

function sink(id: string): AccountConfig {
  return { id, relation: 'peer', assetCode: 'USD', assetScale: 6, minBalance: '0', settleThreshold: '1000', settleTo: '200' } as AccountConfig
}

/**
 * The master serving a key (host:port), from CLUSTER SLOTS. The client's own
 * slot cache is not read: it may still be filling when the first call returns.
 */
async function nodeOf(key: string): Promise<string> {
  const slot = Number(await client.cluster('KEYSLOT', key))
  const ranges = await client.cluster('SLOTS')
  const master = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2]
  if (!master) throw new Error(`slot ${slot} is served by no master`)
  return `${master[0]}:${master[1]}`
}

describe('settlement requests on a Redis Cluster', () => {
  it('check, relay and mark run without CROSSSLOT; requests reach the stream once and the webhook gets them', async () => {
    const keys = new Keys('sc:')
    // accounts whose slot is on another master than the farm's stream
    const farmNode = await nodeOf(keys.settlements)
    const ids: string[] = []
    for (let i = 0; ids.length < 3; i++) if ((await nodeOf(keys.account(`acct${i}`))) !== farmNode) ids.push(`acct${i}`)
    const [a, b, c] = ids as [string, string, string]
    const settlements = new Settlements(client, keys, log, { url: webhookUrl })
    const adjustments = new Adjustments(client, keys, settlements.relay)

    // a deposit crosses the threshold: step 1 in the account's slot, then the relay
    const deposit = await adjustments.adjust(sink(a), 'deposit', '1500', 'dep-1')
    expect(deposit).toMatchObject({ status: 'applied', balance: '1500', settlementId: expect.stringMatching(new RegExp(`^${a}:`)) })
    // a credit crosses it on another account, checked after the credit as the fulfill path does
    await client.hset(keys.account(b), 'cold', '1200')
    const [left] = (await SETTLE_CHECK.run(client, [keys.account(b), keys.settleRequests(b)], [b, '1000', '200'])) as [string, unknown]
    // step 1 alone (a crash before the relay): the next check relays it
    expect(await settlements.afterCredit(sink(b))).toBeUndefined()
    expect(settlements.relay.backlog).toBe(0)

    const recent = await settlements.recent()
    expect(recent.map((r) => r.id).sort()).toEqual([(deposit as { settlementId: string }).settlementId, left].sort())
    expect(await client.hlen(keys.settleRequests(a))).toBe(0)
    expect(await client.hlen(keys.settleRequests(b))).toBe(0)

    // paying the request closes it, on the account's own node
    expect(await adjustments.adjust(sink(a), 'withdrawal', '1300', (deposit as { settlementId: string }).settlementId)).toMatchObject({ status: 'applied', balance: '200' })
    expect(await client.hget(keys.account(a), 'settlePending')).toBeNull()

    // a worker registered a check, ran step 1 and died: the leader relays what the account left
    await client.hset(keys.account(c), 'cold', '5000')
    await settlements.relay.touch(c)
    const [leftover] = (await SETTLE_CHECK.run(client, [keys.account(c), keys.settleRequests(c)], [c, '1000', '200'])) as [string, unknown]
    await new Promise((r) => setTimeout(r, 5))
    expect(await settlements.relayLeftovers(1)).toBeGreaterThanOrEqual(1)
    expect((await settlements.recent(1))[0]!.id).toBe(leftover)
    expect(await client.hlen(keys.settleRequests(c))).toBe(0)

    // the leader's delivery, from the farm's slot
    expect(await settlements.deliverWebhooks()).toBe(3)
    expect(hooks.map((h) => h.key)).toEqual([...recent].reverse().map((r) => r.id).concat(leftover))
    expect(hooks[0]!.body).toMatchObject({ id: hooks[0]!.key, amount: expect.any(String), settleTo: '200' })
    expect(await settlements.deliverWebhooks()).toBe(0)
  }, 30_000)
})
