import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Agent, request } from 'undici'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type LocalCluster, startLocalCluster } from '../../src/farm/local-cluster.js'
import { account, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'

/**
 * The hosted receiver, ilp_pay, the histories and the events on a Redis
 * Cluster (3 masters), with two workers standing for two hosts: the SPSP
 * answer from one, the payment and the events through the other. Every
 * script of theirs touches one slot (a cross-slot call would fail here).
 */
let cluster: LocalCluster
const farms: TestFarm[] = []

beforeAll(async () => {
  cluster = await startLocalCluster({ dataDir: mkdtempSync(join(tmpdir(), 'ilp-farm-pay-cluster-')), masters: 3, replicasPerMaster: 0 })
  const accounts = [account('alice', { minBalance: '-1000000000' }), account('bob')]
  const config = { redis: { keyPrefix: 'paycl:' }, payments: { allowPrivateSpsp: true, allowHttpSpsp: true } }
  for (const shard of [0, 1]) farms.push(await startTestFarm({ cluster: [...cluster.seeds] }, accounts, config, { shard }))
})

afterAll(async () => {
  for (const farm of farms) await farm.close()
  await cluster?.stop()
})

async function rpc<T = Record<string, unknown>>(farm: TestFarm, token: string, method: string, params: unknown): Promise<T> {
  const res = await request(`${farm.url}/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  })
  const answer = (await res.body.json()) as { result?: T; error?: unknown }
  if (answer.error !== undefined) throw new Error(`${method}: ${JSON.stringify(answer.error)}`)
  return answer.result!
}

describe('payments on a Redis Cluster', () => {
  it('an offline child is paid through its pointer from the other worker, told of it, and both histories have it', async () => {
    const { spspUrl } = await rpc<{ spspUrl: string }>(farms[0]!, 'bob-token', 'ilp_getAccountInfo', {})
    const agent = new Agent()
    const abort = new AbortController()
    const feed = await request(`${farms[0]!.url}/rpc/events`, { headers: { authorization: 'Bearer bob-token' }, signal: abort.signal, dispatcher: agent })
    let events = ''
    const reading = (async () => {
      try {
        for await (const chunk of feed.body) events += (chunk as Buffer).toString('utf8')
      } catch {
        // aborted
      }
    })()
    const paid = await rpc(farms[1]!, 'alice-token', 'ilp_pay', { paymentPointer: spspUrl, sourceAmount: '250000' })
    expect(paid).toMatchObject({ state: 'completed', amount: '250000', delivered: '250000' })
    expect(await balanceOf(farms[0]!.url, 'bob')).toBe('250000')
    expect(await balanceOf(farms[0]!.url, 'alice')).toBe('-250000')
    const deadline = Date.now() + 5_000
    while (!events.includes('"amount":"250000"') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    abort.abort()
    await reading
    await agent.close()
    expect(events).toContain(`"counterpart":"${FARM_ADDRESS}.alice"`)
    const bob = await rpc<{ payments: Array<Record<string, unknown>> }>(farms[1]!, 'bob-token', 'ilp_getPayments', {})
    expect(bob.payments.map((p) => [p.direction, p.amount])).toEqual([['incoming', '250000']])
    const alice = await rpc<{ payments: Array<Record<string, unknown>> }>(farms[0]!, 'alice-token', 'ilp_getPayments', {})
    expect(alice.payments.map((p) => [p.direction, p.state, p.amount])).toEqual([['outgoing', 'completed', '250000']])
  })
})
