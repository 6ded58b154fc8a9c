import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Type } from 'ilp-packet'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { account, adminGet, adminSend, balanceOf, prepareTo, sendIlp, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { fulfillKnown, knownCondition, readBody, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * Settlement trigger: concurrent packets on several workers push an
 * account over its settleThreshold; exactly one settlement request is
 * recorded per crossing, and the webhook gets it.
 */
let redis: TestRedis
const workers: TestFarm[] = []
let sinkPeer: TestPeer
let webhook: Server
let webhookUrl: string
const hooks: Array<{ body: Record<string, string>; key: string | undefined; auth: string | undefined }> = []
const prefix = `st${Math.random().toString(36).slice(2, 8)}:`

interface Settlement {
  id: string
  account: string
  amount: string
  balance: string
}

beforeAll(async () => {
  redis = await startTestRedis()
  sinkPeer = await startTestPeer(fulfillKnown)
  webhook = createServer((req, res) => {
    void readBody(req).then((body) => {
      hooks.push({ body: JSON.parse(body.toString()) as Record<string, string>, key: req.headers['idempotency-key'] as string | undefined, auth: req.headers.authorization })
      res.end('ok')
    })
  })
  await new Promise<void>((resolve) => webhook.listen(0, '127.0.0.1', resolve))
  webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/settle`
  const accounts = [
    account('alice', { minBalance: '-100000000' }),
    account('sink', { relation: 'peer', outgoing: { url: sinkPeer.url }, routes: ['test.sink'], settleThreshold: '1000', settleTo: '200' }),
  ]
  for (let shard = 0; shard < 3; shard++) {
    workers.push(
      await startTestFarm(redis.url, accounts, { redis: { keyPrefix: prefix }, settlement: { webhookUrl, webhookToken: 'hook-secret' } }, { shard }),
    )
  }
})

afterAll(async () => {
  await Promise.all(workers.map((w) => w.close()))
  await sinkPeer?.close()
  webhook?.close()
  await redis?.close()
})

const settlements = async () => (await adminGet<Settlement[]>(workers[0]!.url, '/admin/settlements')).json

async function eventually(check: () => void | Promise<void>, ms = 3000): Promise<void> {
  const start = Date.now()
  for (;;) {
    try {
      return await check()
    } catch (err) {
      if (Date.now() - start > ms) throw err
      await new Promise((r) => setTimeout(r, 25))
    }
  }
}

describe('settlement trigger', () => {
  it('concurrent packets crossing the threshold on three workers record exactly one request', async () => {
    // 150 packets of 10 at once, spread over the workers: the balance goes 0 → 1500, crossing 1000 once
    const sent = await Promise.all(
      Array.from({ length: 150 }, (_, i) => sendIlp(workers[i % 3]!.url, 'alice', prepareTo('test.sink.x', '10', knownCondition()))),
    )
    const notFulfilled = sent.filter((r) => r.packet?.type !== Type.TYPE_ILP_FULFILL)
    expect(notFulfilled.map((r) => JSON.stringify(r.packet ?? r.status))).toEqual([])
    expect(await balanceOf(workers[0]!.url, 'sink')).toBe('1500')
    await eventually(async () => expect(await settlements()).toHaveLength(1))
    const [request] = await settlements()
    expect(request!.account).toBe('sink')
    // recorded at the crossing: the balance then (1000 to 1500 as packets landed), less settleTo
    expect(BigInt(request!.balance)).toBeGreaterThanOrEqual(1000n)
    expect(BigInt(request!.amount)).toBe(BigInt(request!.balance) - 200n)
    // more credit while the request is open records nothing more
    await Promise.all(Array.from({ length: 30 }, (_, i) => sendIlp(workers[i % 3]!.url, 'alice', prepareTo('test.sink.x', '10', knownCondition()))))
    await new Promise((r) => setTimeout(r, 200))
    expect(await settlements()).toHaveLength(1)
    // the webhook got it once, with the entry id as Idempotency-Key and the configured token
    await eventually(() => expect(hooks).toHaveLength(1))
    expect(hooks[0]).toMatchObject({ key: request!.id, auth: 'Bearer hook-secret', body: { id: request!.id, account: 'sink', amount: request!.amount } })
  })

  it('paying the request (a withdrawal keyed by its id) closes it; the next crossing records the next one', async () => {
    const [open] = await settlements()
    // the operator pays what is owed now above settleTo (more came in since the request was recorded)
    const paid = await adminSend<{ balance: string; applied: boolean; settlementId?: string }>(
      workers[1]!.url,
      'POST',
      '/admin/accounts/sink/withdrawals',
      { amount: '1600' },
      { headers: { 'idempotency-key': open!.id } },
    )
    expect(paid.json).toMatchObject({ applied: true, balance: '200' })
    expect(paid.json.settlementId).toBeUndefined()
    const after = 200n
    // packets push it over again: a second request, exactly one
    const needed = Number((1000n - after + 9n) / 10n) + 5
    await Promise.all(Array.from({ length: needed }, (_, i) => sendIlp(workers[i % 3]!.url, 'alice', prepareTo('test.sink.x', '10', knownCondition()))))
    await eventually(async () => expect(await settlements()).toHaveLength(2))
    await new Promise((r) => setTimeout(r, 200))
    expect(await settlements()).toHaveLength(2)
    await eventually(() => expect(hooks).toHaveLength(2))
    expect(hooks.map((h) => h.key)).toEqual([...(await settlements()).map((s) => s.id)].reverse())
  })

  it('a deposit that crosses the threshold records one too', async () => {
    const [open] = await settlements()
    await adminSend(workers[2]!.url, 'POST', '/admin/accounts/sink/withdrawals', { amount: open!.amount }, { headers: { 'idempotency-key': open!.id } })
    const balance = BigInt(await balanceOf(workers[0]!.url, 'sink'))
    expect(balance).toBeLessThan(1000n)
    const deposited = await adminSend<{ settlementId?: string }>(
      workers[0]!.url,
      'POST',
      '/admin/accounts/sink/deposits',
      { amount: String(1000n - balance) },
      { headers: { 'idempotency-key': 'top-up' } },
    )
    expect(deposited.json.settlementId).toBeDefined()
    const all = await settlements()
    expect(all).toHaveLength(3)
    expect(all[0]).toMatchObject({ id: deposited.json.settlementId, balance: '1000', amount: '800' })
  })
})
