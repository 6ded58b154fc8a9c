import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { connect, createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { IlpPacketType, type IlpFulfill } from 'ilp-packet'
import { deserializeIldcpResponse, serializeIldcpRequest } from 'ilp-protocol-ildcp'
import { request } from 'undici'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { stringify } from 'yaml'
import type { FarmConfigInput } from '../../src/config/schema.js'
import { ADMIN_TOKEN, adminGet, balanceOf, prepareTo, sendIlp } from '../helpers/farm.js'
import {
  cleanEnv,
  type CliRun,
  descendantsOf,
  isRunning,
  killAllClis,
  processes,
  redisServerOnPort,
  ROOT,
  runCli,
  waitUntilGone,
} from '../helpers/cli.js'
import { fulfillKnown, knownCondition, startTestPeer, type TestPeer } from '../helpers/peer.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * `ilp-farm` as an operator runs it: real processes (supervisor, cluster
 * workers under tsx, embedded redis-server), real signals, real sockets.
 */

const PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }
const START_TIMEOUT_MS = 45_000

let tmp: string
let peer: TestPeer

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-cli-'))
  peer = await startTestPeer(fulfillKnown)
})

afterEach(async () => {
  await killAllClis()
})

afterAll(async () => {
  await killAllClis()
  await peer?.close()
  rmSync(tmp, { recursive: true, force: true })
})

let configCount = 0

/** A config file in the temp folder: port 0, quiet logs, alice (child) and upstream (peer → the test peer). */
function writeConfig(fields: Partial<FarmConfigInput> = {}): { file: string; dir: string } {
  const dir = join(tmp, `farm-${++configCount}`)
  mkdirSync(dir, { recursive: true })
  const config: FarmConfigInput = {
    ilpAddress: 'test.farm',
    http: { host: '127.0.0.1', port: 0 },
    workers: 2,
    redis: { dataDir: join(dir, 'redis-data') },
    admin: { token: ADMIN_TOKEN },
    log: { level: 'warn' },
    accounts: [
      {
        id: 'alice',
        relation: 'child',
        assetCode: 'USD',
        assetScale: 6,
        minBalance: '-1000000',
        incoming: { token: 'alice-token' },
      },
      {
        id: 'upstream',
        relation: 'peer',
        assetCode: 'USD',
        assetScale: 6,
        incoming: { token: 'upstream-token' },
        outgoing: { url: peer.url, token: 'farm-to-upstream' },
        routes: ['test.upstream'],
      },
    ],
    ...fields,
  }
  const file = join(dir, 'farm.yaml')
  writeFileSync(file, stringify(config))
  return { file, dir }
}

interface RunningFarm {
  run: CliRun
  url: string
  redisPort: number | undefined
  redisPid: number | undefined
  workerPids: number[]
}

/** `ilp-farm start`, waiting for "listening on <url>". */
async function startFarm(file: string, env: NodeJS.ProcessEnv = cleanEnv()): Promise<RunningFarm> {
  const run = runCli(['start', '--config', file], { env })
  // (Until then, cleanup finds the embedded redis-server among the supervisor's children.)
  const [, url] = await run.waitFor(/listening on (http:\/\/\S+)/, START_TIMEOUT_MS)
  const announced = run.stdout().match(/embedded redis-server at redis:\/\/127\.0\.0\.1:(\d+)/)
  const redisPort = announced ? Number(announced[1]) : undefined
  const redisPid = redisPort === undefined ? undefined : redisServerOnPort(redisPort)?.pid
  if (redisPid !== undefined) run.track(redisPid)
  const children = processes().filter((p) => p.ppid === run.pid)
  const workerPids = children.filter((p) => p.args.includes('worker-main')).map((p) => p.pid)
  workerPids.forEach((p) => run.track(p))
  return { run, url: url!, redisPort, redisPid, workerPids }
}

async function getJson(url: string): Promise<{ status: number; json: unknown }> {
  const res = await request(url)
  return { status: res.statusCode, json: await res.body.json() }
}

/** PING on a plain socket: Redis' first reply line, whatever it is (a refusal included). */
function rawPing(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'))
    socket.once('data', (data) => {
      socket.destroy()
      resolve(data.toString().split('\r\n')[0]!)
    })
    socket.once('error', reject)
  })
}

function appendOnlyFiles(dataDir: string): string[] {
  const aofDir = join(dataDir, 'appendonlydir') // Redis 7; Redis 6 writes appendonly.aof in dataDir
  if (existsSync(aofDir)) return readdirSync(aofDir).map((f) => `appendonlydir/${f}`)
  return readdirSync(dataDir).filter((f) => f.startsWith('appendonly'))
}

/** What every embedded-Redis start must show: the child, a working farm, ILDCP over a real socket. */
async function checkRunningFarm(farm: RunningFarm, dataDir: string): Promise<void> {
  expect(farm.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
  expect(farm.url).not.toMatch(/:0$/) // the real port, not the configured 0
  expect(farm.redisPort).toBeGreaterThan(0)
  expect(farm.run.stdout()).toContain(`append-only data in ${dataDir}`)

  // The embedded redis-server is a child of the supervisor, and it answers.
  expect(farm.redisPid).toBeDefined()
  const redisProcess = processes().find((p) => p.pid === farm.redisPid)
  expect(redisProcess?.ppid).toBe(farm.run.pid)
  // it answers only the farm: a password every start, handed to the workers, never on a command line
  expect(await rawPing(farm.redisPort!)).toMatch(/^-NOAUTH/)
  expect(redisProcess?.args).not.toMatch(/requirepass/)
  expect(statSync(dataDir).mode & 0o777).toBe(0o700)
  // Two cluster workers (running under tsx, inherited from the supervisor's execArgv).
  expect(farm.workerPids).toHaveLength(2)
  for (const pid of farm.workerPids) expect(processes().find((p) => p.pid === pid)?.args).toMatch(/--import tsx .*worker-main\.ts/)

  const health = await getJson(`${farm.url}/health`)
  expect(health).toEqual({ status: 200, json: { status: 'ok', redis: 'up' } })

  const ildcp = await sendIlp(farm.url, 'alice', serializeIldcpRequest({ expiresAt: new Date(Date.now() + 30_000) }))
  expect(ildcp.status).toBe(200)
  expect(deserializeIldcpResponse(ildcp.body)).toEqual({ clientAddress: 'test.farm.alice', assetCode: 'USD', assetScale: 6 })
}

/** After a clean stop: exit 0, and no worker or redis-server left behind. */
async function checkStopped(farm: RunningFarm, signal: string): Promise<void> {
  const exit = await farm.run.waitForExit(30_000)
  expect(farm.run.stdout()).toContain(`${signal} received, stopping`)
  expect(exit, farm.run.stderr()).toEqual({ code: 0, signal: null })
  for (const pid of [...farm.workerPids, ...(farm.redisPid === undefined ? [] : [farm.redisPid])]) {
    await waitUntilGone(pid, 5_000)
    expect(isRunning(pid)).toBe(false)
  }
  if (farm.redisPort !== undefined) expect(redisServerOnPort(farm.redisPort)).toBeUndefined()
}

describe('ilp-farm start with the embedded Redis', () => {
  it(
    'serves on the real port, stops cleanly on SIGTERM, and keeps balances across a restart',
    async () => {
      const { file, dir } = writeConfig()
      const dataDir = join(dir, 'redis-data')
      const farm = await startFarm(file)
      await checkRunningFarm(farm, dataDir)

      // A fulfilled payment alice → upstream moves both balances.
      const res = await sendIlp(farm.url, 'alice', prepareTo('test.upstream.bob', '250', knownCondition()))
      expect(res.status).toBe(200)
      expect(res.packet?.type).toBe(IlpPacketType.Fulfill)
      expect((res.packet?.data as IlpFulfill).data.toString()).toBe('paid')
      expect(peer.received.at(-1)?.headers.authorization).toBe('Bearer farm-to-upstream')
      expect(await balanceOf(farm.url, 'alice')).toBe('-250')
      expect(await balanceOf(farm.url, 'upstream')).toBe('250')

      farm.run.child.kill('SIGTERM')
      await checkStopped(farm, 'SIGTERM')
      expect(appendOnlyFiles(dataDir).length).toBeGreaterThan(0)

      // Same config, same data folder: the balances survived.
      const again = await startFarm(file)
      expect(again.redisPid).toBeDefined()
      const { status, json } = await adminGet<{ id: string; balance: string }>(again.url, '/admin/accounts/alice')
      expect(status).toBe(200)
      expect(json).toMatchObject({ id: 'alice', balance: '-250' })
      expect(await balanceOf(again.url, 'upstream')).toBe('250')
      again.run.child.kill('SIGTERM')
      await checkStopped(again, 'SIGTERM')
    },
    3 * 60_000,
  )

  it(
    'stops cleanly on SIGINT to the whole process group (Ctrl+C in a terminal)',
    async () => {
      const { file, dir } = writeConfig()
      const dataDir = join(dir, 'redis-data')
      const farm = await startFarm(file)
      await checkRunningFarm(farm, dataDir)

      // The workers get the SIGINT too; the embedded redis-server, in its own group, does not.
      process.kill(-farm.run.pid, 'SIGINT')
      await checkStopped(farm, 'SIGINT')
      expect(appendOnlyFiles(dataDir).length).toBeGreaterThan(0)
      expect(farm.run.stdout()).not.toMatch(/worker \d+ exited .*restarting/)
    },
    2 * 60_000,
  )

  it(
    'stops cleanly on SIGINT to the supervisor alone',
    async () => {
      const { file, dir } = writeConfig({ workers: 1 })
      const farm = await startFarm(file)
      expect(farm.workerPids).toHaveLength(1)
      expect((await getJson(`${farm.url}/health`)).status).toBe(200)
      farm.run.child.kill('SIGINT')
      await checkStopped(farm, 'SIGINT')
      expect(appendOnlyFiles(join(dir, 'redis-data')).length).toBeGreaterThan(0)
    },
    2 * 60_000,
  )
})

describe('ilp-farm start with REDIS_URL', () => {
  let redis: TestRedis
  beforeAll(async () => {
    redis = await startTestRedis()
  })
  afterAll(async () => {
    await redis?.close()
  })

  it(
    'uses that Redis and starts no embedded redis-server',
    async () => {
      const { file, dir } = writeConfig({ workers: 1 })
      const farm = await startFarm(file, cleanEnv({ REDIS_URL: redis.url }))
      expect(farm.run.stdout()).not.toContain('embedded redis-server')
      expect(farm.redisPort).toBeUndefined()
      expect(descendantsOf(farm.run.pid).map((pid) => processes().find((p) => p.pid === pid)?.args ?? '')).not.toContainEqual(
        expect.stringContaining('redis-server'),
      )
      expect(existsSync(join(dir, 'redis-data'))).toBe(false)

      expect((await getJson(`${farm.url}/health`)).status).toBe(200)
      const res = await sendIlp(farm.url, 'alice', prepareTo('test.upstream.carol', '40', knownCondition()))
      expect(res.packet?.type).toBe(IlpPacketType.Fulfill)
      // The balances live in the test's Redis.
      expect(await redis.client.hget('ilpfarm:{acct:upstream}', 'cold')).toBe('40')

      farm.run.child.kill('SIGTERM')
      await checkStopped(farm, 'SIGTERM')
      // The farm does not stop a Redis it did not start.
      expect(await redis.client.ping()).toBe('PONG')
    },
    2 * 60_000,
  )
})

describe('ilp-farm start that cannot serve', () => {
  it(
    'exits 1 when the HTTP port is taken, without leaving the embedded redis-server behind',
    async () => {
      const blocker = createServer()
      await new Promise<void>((ready) => blocker.listen(0, '127.0.0.1', ready))
      try {
        const { port } = blocker.address() as AddressInfo
        const { file } = writeConfig({ http: { host: '127.0.0.1', port } })
        const run = runCli(['start', '--config', file])
        const [, redisPort] = await run.waitFor(/embedded redis-server at redis:\/\/127\.0\.0\.1:(\d+)/, START_TIMEOUT_MS)
        const redisPid = redisServerOnPort(Number(redisPort))?.pid
        if (redisPid !== undefined) run.track(redisPid)
        const exit = await run.waitForExit(START_TIMEOUT_MS)
        expect(exit).toEqual({ code: 1, signal: null })
        expect(run.stderr()).toContain('EADDRINUSE')
        expect(run.stderr()).toMatch(/worker \d exited \(code 1\) before it was listening/)
        expect(run.stdout()).not.toContain('listening on')
        if (redisPid !== undefined) await waitUntilGone(redisPid, 5_000)
        expect(redisServerOnPort(Number(redisPort))).toBeUndefined()
      } finally {
        await new Promise<void>((closed) => blocker.close(() => closed()))
      }
    },
    2 * 60_000,
  )

  it('exits 1 when REDIS_URL cannot be reached', async () => {
    const { file, dir } = writeConfig({ workers: 1 })
    const run = runCli(['start', '--config', file], { env: cleanEnv({ REDIS_URL: 'redis://127.0.0.1:1' }) })
    expect(await run.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 1, signal: null })
    expect(run.stderr()).toContain('ilp-farm: cannot reach Redis at redis://127.0.0.1:1')
    expect(existsSync(join(dir, 'redis-data'))).toBe(false)
  })
})

describe('ilp-farm start without redis-server', () => {
  const expectHelpfulFailure = async (run: CliRun) => {
    const exit = await run.waitForExit(START_TIMEOUT_MS)
    expect(exit.code).not.toBe(0)
    expect(exit.code).not.toBeNull()
    expect(run.stderr()).toContain('redis-server was not found')
    expect(run.stderr()).toContain('apt-get install -y redis-server')
    expect(run.stderr()).toContain('REDIS_URL=redis://')
    expect(run.stdout()).not.toContain('listening on')
  }

  it('explains how to install it or set REDIS_URL when it is not on PATH', async () => {
    const { file, dir } = writeConfig({ workers: 1 })
    const bin = join(dir, 'bin-with-only-node')
    mkdirSync(bin)
    symlinkSync(process.execPath, join(bin, 'node'))
    await expectHelpfulFailure(runCli(['start', '--config', file], { env: cleanEnv({ PATH: bin }) }))
  })

  it('explains it when REDIS_SERVER_BIN points nowhere', async () => {
    const { file } = writeConfig({ workers: 1 })
    await expectHelpfulFailure(runCli(['start', '--config', file], { env: cleanEnv({ REDIS_SERVER_BIN: '/nonexistent/redis-server' }) }))
  })
})

describe('ilp-farm with a bad config', () => {
  const badConfig = () => {
    const { file } = writeConfig()
    writeFileSync(file, readFileSync(file, 'utf8').replace('minBalance: "-1000000"', 'minBalance: "-1.5"').replace('workers: 2', 'workers: 2\nbogus: 1'))
    return file
  }

  it.each(['start', 'check'])('%s exits 2 and prints the field path and reason', async (command) => {
    const file = badConfig()
    const run = runCli([command, '--config', file])
    const exit = await run.waitForExit(START_TIMEOUT_MS)
    expect(exit).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain(`invalid config ${file}:`)
    expect(run.stderr()).toContain('  - bogus: unknown key')
    expect(run.stderr()).toContain('  - accounts[0].minBalance: must be an integer decimal string such as "-1000" or "0"')
    expect(run.stdout()).not.toContain('listening on')
    expect(existsSync(join(file, '..', 'redis-data'))).toBe(false) // failed before touching Redis
  })

  it('exits 2 for a missing config file', async () => {
    const run = runCli(['start', '--config', join(tmp, 'missing.yaml')])
    expect(await run.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain('(file): cannot read: ENOENT')
  })
})

describe('ilp-farm check, --version, --help', () => {
  it('check --config config/example.yaml prints ok and exits 0', async () => {
    const run = runCli(['check', '--config', 'config/example.yaml'])
    expect(await run.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    expect(run.stdout()).toBe('config/example.yaml: ok\n')
  })

  it.each(['--version', '-v'])('%s prints the package.json version', async (flag) => {
    const run = runCli([flag])
    expect(await run.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    expect(run.stdout()).toBe(`${PKG.version}\n`)
  })

  it('--help prints the usage and exits 0; no command exits 2', async () => {
    const help = runCli(['--help'])
    const bare = runCli([])
    expect(await help.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 0, signal: null })
    expect(help.stdout()).toContain('Usage: ilp-farm <command>')
    expect(await bare.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 2, signal: null })
  })

  it('an unknown command exits 2', async () => {
    const run = runCli(['frobnicate'])
    expect(await run.waitForExit(START_TIMEOUT_MS)).toEqual({ code: 2, signal: null })
    expect(run.stderr()).toContain('unknown command: frobnicate')
  })
})
