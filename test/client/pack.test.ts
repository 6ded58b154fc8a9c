import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTunnelServer, type TunnelServer } from '../../src/tunnel/server.js'
import { type CliRun, ROOT, runCli } from '../helpers/cli.js'
import { account, adminSend, balanceOf, FARM_ADDRESS, startTestFarm, type TestFarm } from '../helpers/farm.js'
import { startTestRedis, type TestRedis } from '../helpers/redis.js'

/**
 * The client as a user gets it: `npm pack` of ilp-farm-client and of
 * @ilp-farm/protocol (both would be published), installed into an empty
 * folder as a wallet would install them. No server dependency may come
 * along; then the installed CLI and API, run by plain node (no tsx, no
 * source), redeem a ticket, sign up, receive through the farm's tunnel
 * server and pay, against a real farm.
 */

const run = promisify(execFile)
/** What the farm needs and a client must never pull in. */
const SERVER_PACKAGES = ['fastify', '@fastify/swagger', 'ioredis', 'prom-client', 'piscina', 'chart.js', 'cytoscape', 'pino', 'zod', 'yaml', 'cli-table3', 'ilp-protocol-ccp', 'ilp-farm']

let work: string
let app: string
let tarballs: { protocol: string; client: string }
let redis: TestRedis
let farm: TestFarm
let tunnel: TunnelServer
const processes: CliRun[] = []

async function npm(args: string[], cwd: string): Promise<string> {
  const { stdout } = await run('npm', args, { cwd, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' } })
  return stdout
}

/** Every package name under node_modules, nested ones too. */
async function installedPackages(dir: string): Promise<Set<string>> {
  const names = new Set<string>()
  const walk = async (modules: string): Promise<void> => {
    let entries: string[]
    try {
      entries = await readdir(modules)
    } catch {
      return
    }
    for (const entry of entries) {
      if (entry.startsWith('.')) continue
      const dirs = entry.startsWith('@') ? (await readdir(join(modules, entry))).map((e) => join(entry, e)) : [entry]
      for (const name of dirs) {
        names.add(name)
        await walk(join(modules, name, 'node_modules'))
      }
    }
  }
  await walk(join(dir, 'node_modules'))
  return names
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'ilp-farm-pack-'))
  app = join(work, 'app')
  // prepack builds each package first; the protocol first, as the client's types need its own.
  const packed = JSON.parse(await npm(['pack', '--json', '--pack-destination', work, '-w', '@ilp-farm/protocol', '-w', 'ilp-farm-client'], ROOT)) as Array<{
    name: string
    filename: string
    files: Array<{ path: string }>
  }>
  const byName = new Map(packed.map((p) => [p.name, p]))
  tarballs = { protocol: join(work, byName.get('@ilp-farm/protocol')!.filename), client: join(work, byName.get('ilp-farm-client')!.filename) }
  const clientFiles = byName.get('ilp-farm-client')!.files.map((f) => f.path)
  expect(clientFiles).toEqual(expect.arrayContaining(['package.json', 'README.md', 'bin/ilp-farm-client.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli.js', 'dist/pow-worker.js']))
  expect(clientFiles.filter((f) => f.startsWith('src/') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([])

  await mkdir(app)
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'a-wallet', version: '1.0.0', private: true, type: 'module' }))
  // The registry's packages from the local cache where it has them; the two tarballs as they would be published.
  await npm(['install', '--prefer-offline', '--no-package-lock', tarballs.protocol, tarballs.client], app)

  redis = await startTestRedis()
  const callbackUrls = ['http://127.0.0.1:']
  farm = await startTestFarm(redis.url, [account('payer', { minBalance: '-5000000', maxPacketAmount: '250000', incoming: { token: 'payer-token', callbackUrls } })], {
    signup: { enabled: true, difficulty: 8, account: { assetCode: 'USD', assetScale: 6, minBalance: '0', maxBalance: '1000000' } },
    users: { rpcUrlPrefixes: callbackUrls },
  })
  tunnel = await startTunnelServer()
}, 240_000)

afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()))
  await tunnel?.close()
  await farm?.close()
  await redis?.close()
  if (work) await rm(work, { recursive: true, force: true })
})

/** The installed bin, run by plain node from the wallet's folder. */
function clientCli(args: string[]): CliRun {
  const cli = runCli(args, { script: join(app, 'node_modules', '.bin', 'ilp-farm-client'), cwd: app, nodeArgs: [] })
  processes.push(cli)
  return cli
}

describe('the packed client, installed alone', () => {
  it('brings its own dependencies and no server dependency', async () => {
    const installed = await installedPackages(app)
    expect(installed.has('ilp-farm-client')).toBe(true)
    expect(installed.has('@ilp-farm/protocol')).toBe(true)
    for (const dep of ['ilp-protocol-stream', 'ilp-protocol-ildcp', 'ilp-packet', 'undici', 'cli-progress']) expect(installed.has(dep), dep).toBe(true)
    expect(SERVER_PACKAGES.filter((name) => installed.has(name))).toEqual([])
    const manifest = JSON.parse(await readFile(join(app, 'node_modules', 'ilp-farm-client', 'package.json'), 'utf8')) as { dependencies: Record<string, string> }
    expect(Object.keys(manifest.dependencies).sort()).toEqual(['@ilp-farm/protocol', 'cli-progress', 'ilp-packet', 'ilp-protocol-ildcp', 'ilp-protocol-stream', 'undici'])
  })

  it('its CLI redeems a ticket and receives through the tunnel; its API signs up and pays', async () => {
    const rpcUrl = `${farm.url}/rpc`
    const issued = await adminSend<{ ticket: string }>(farm.url, 'POST', '/admin/tickets', { account: { assetCode: 'USD', assetScale: 6, maxBalance: '10000000' } })
    expect(issued.status).toBe(201)
    const redeem = clientCli(['redeem', '--rpc', rpcUrl, '--ticket', issued.json.ticket, '--id', 'wallet'])
    expect((await redeem.waitForExit(30_000)).code, redeem.stderr()).toBe(0)
    const redeemed = JSON.parse(redeem.stdout()) as { id: string; token: string; ilpAddress: string }
    expect(redeemed).toMatchObject({ id: 'wallet', ilpAddress: `${FARM_ADDRESS}.wallet` })

    const receiver = clientCli(['receive', '--rpc', rpcUrl, '--token', redeemed.token, '--tunnel-host', tunnel.url])
    const destination = (await receiver.waitFor(/destination: (\S+)/, 30_000))[1]!
    const secret = (await receiver.waitFor(/secret: (\S+)/))[1]!
    expect(receiver.stdout()).toMatch(new RegExp(`registered: ${tunnel.url}/[0-9a-f]+/\\S+`))

    // The API as a wallet's own code imports it: signUp (the proof of work on the built worker threads), then a payment.
    await writeFile(
      join(app, 'wallet.js'),
      `import { FarmClient, FarmRpc, signUp } from 'ilp-farm-client'
const [rpcUrl, destination, secret] = process.argv.slice(2)
const signed = await signUp(rpcUrl, { id: 'signed', threads: 2 })
const rpc = new FarmRpc(rpcUrl, signed.token)
const balance = await rpc.getBalance()
await rpc.close()
const client = new FarmClient({ rpcUrl, token: 'payer-token', listen: false })
await client.start()
const paid = await client.pay({ destinationAccount: destination, sharedSecret: Buffer.from(secret, 'base64') }, '750000')
await client.stop()
console.log(JSON.stringify({ signed: { id: signed.id, ilpAddress: signed.ilpAddress }, balance, paid }))
`,
    )
    const wallet = runCli([rpcUrl, destination, secret], { script: join(app, 'wallet.js'), cwd: app, nodeArgs: [] })
    processes.push(wallet)
    expect((await wallet.waitForExit(60_000)).code, wallet.stderr()).toBe(0)
    const out = JSON.parse(wallet.stdout()) as { signed: unknown; balance: { balance: string }; paid: { sent: string; delivered: string } }
    expect(out.signed).toEqual({ id: 'signed', ilpAddress: `${FARM_ADDRESS}.signed` })
    expect(out.balance.balance).toBe('0')
    expect(out.paid).toMatchObject({ sent: '750000', delivered: '750000' })

    await receiver.waitFor(/received: \d+ \(total 750000\)/)
    expect(await balanceOf(farm.url, 'wallet')).toBe('750000')
    expect(await balanceOf(farm.url, 'payer')).toBe('-750000')
    receiver.child.kill('SIGTERM')
    expect(await receiver.waitForExit(15_000)).toEqual({ code: 0, signal: null })
    expect(receiver.stdout()).toContain('stopped; received 750000 in all')
  })
})
