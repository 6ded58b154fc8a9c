import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Client } from 'undici'
import { stringify } from 'yaml'
import { type CliRun, runCli } from './cli.js'
import { account, ADMIN_TOKEN, prepareTo, sendIlp } from './farm.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from './peer.js'

export interface TwoWorkerFarm {
  farm: CliRun
  url: string
  /** The peer behind test.bob: it fulfills every packet. */
  bob: TestPeer
}

/**
 * `ilp-farm start` in its own process with two node:cluster workers sharing
 * the port, with alice (a child with credit) and bob (a peer that fulfills,
 * behind test.bob). Its Redis is `redis` (config keys beside keyPrefix) or
 * comes from `env` (REDIS_URL, REDIS_CLUSTER); the config file goes in `tmp`.
 */
export async function startTwoWorkerFarm(tmp: string, opts: { keyPrefix: string; redis?: Record<string, unknown>; env: NodeJS.ProcessEnv }): Promise<TwoWorkerFarm> {
  const bob = await startTestPeer(fulfillKnown)
  const file = join(tmp, 'farm.yaml')
  writeFileSync(
    file,
    stringify({
      ilpAddress: 'test.farm',
      http: { host: '127.0.0.1', port: 0 },
      workers: 2,
      redis: { keyPrefix: opts.keyPrefix, ...opts.redis },
      admin: { token: ADMIN_TOKEN },
      log: { level: 'warn' },
      accounts: [account('alice', { minBalance: '-1000000' }), account('bob', { relation: 'peer', outgoing: { url: bob.url }, routes: ['test.bob'] })],
    }),
  )
  const farm = runCli(['start', '--config', file], { env: opts.env })
  const url = (await farm.waitFor(/listening on (http:\/\/\S+)/, 60_000))[1]!
  return { farm, url, bob }
}

/**
 * A packet from `from` on a new connection, so the workers take turns:
 * which worker took it (/health's x-ilp-farm-shard, on that same
 * connection), the HTTP status, and the answer's type and reject code
 * (undefined when the answer is no packet, a 401 say).
 */
export async function packetOnNewConnection(url: string, from: string, token: string, destination: string): Promise<{ shard: string; status: number; type: number | undefined; code?: string }> {
  const client = new Client(url, { pipelining: 1 })
  try {
    const health = await client.request({ path: '/health', method: 'GET' })
    await health.body.dump()
    const answer = await sendIlp(url, from, prepareTo(destination, '10', knownCondition()), { token, dispatcher: client })
    const data = answer.packet?.data as { code?: string } | undefined
    return { shard: String(health.headers['x-ilp-farm-shard']), status: answer.status, type: answer.packet?.type, ...(data?.code ? { code: data.code } : {}) }
  } finally {
    await client.close()
  }
}
