/**
 * Payments through the farm-hosted receiver, measured end to end: STREAM
 * senders (ilp-protocol-stream, in this process) pay, with small packets,
 * either a child account's payment pointer (the farm receives: `hosted`) or
 * a child's own STREAM server behind its own ILP-over-HTTP endpoint (the farm
 * forwards: `own`), for the same time each. Prints payments and packets per
 * second, and the CPU per fulfilled packet of the farm's worker and of
 * redis-server (Linux /proc): the hosted receiver's added cost per packet
 * is the difference of the farm's CPU per packet between the two. Then the
 * receiver's own work per packet (@interledger/stream-receiver: decrypt,
 * check, fulfill, encrypt the reply), timed in this process on packets a
 * real STREAM sender made.
 *
 *   npm run build && node dist/scripts/bench-hosted.js [--senders 20] [--seconds 10] [--packet 100] [--payment 1000]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { spawn } from 'node:child_process'
import { StreamServer } from '@interledger/stream-receiver'
import { deserializeIlpPrepare, type IlpPrepare, serializeIlpFulfill, serializeIlpReply } from 'ilp-packet'
import { serve as serveIldcp } from 'ilp-protocol-ildcp'
import { createConnection, createServer, type DataAndMoneyStream } from 'ilp-protocol-stream'
import PluginHttpModule from 'ilp-plugin-http'
import { request } from 'undici'
import 'ilp-farm-client/stream-compat'
import { FARM_MAIN, stopFarm, untilListening } from '../src/bench/farms.js'
import { childPids, cpuOf } from '../src/bench/measure.js'
import { freePort, startEmbeddedRedis } from '../src/farm/embedded-redis.js'
import { packageRoot } from '../src/util/package-root.js'

const PluginHttp = PluginHttpModule.default
type Plugin = InstanceType<typeof PluginHttp>

const { values } = parseArgs({
  options: {
    senders: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '10' },
    packet: { type: 'string', default: '100' },
    payment: { type: 'string', default: '1000' },
  },
})
const SENDERS = Number(values.senders)
const SECONDS = Number(values.seconds)
const PACKET = values.packet!
const PAYMENT = Number(values.payment)

/** CPU µs of a process, from /proc. */
const cpu = (pids: number[]) => cpuOf(pids) ?? NaN

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'ilp-farm-bench-hosted-'))
  const redis = await startEmbeddedRedis({ dataDir: join(tmp, 'redis'), appendonly: true, appendfsync: 'everysec' })
  const ownPort = await freePort()
  const farmPort = await freePort()
  const senderPorts = await Promise.all(Array.from({ length: SENDERS }, () => freePort()))
  const config = {
    ilpAddress: 'test.farm',
    http: { host: '127.0.0.1', port: farmPort },
    workers: 1,
    redis: { dataDir: join(tmp, 'unused'), keyPrefix: 'hosted:' },
    log: { level: 'warn' },
    accounts: [
      // small packets: the sender's own maxPacketAmount, which STREAM learns from the F08s
      ...senderPorts.map((port, i) => ({
        id: `s${i}`,
        relation: 'child',
        assetCode: 'USD',
        assetScale: 6,
        minBalance: '-1000000000000000',
        maxPacketAmount: PACKET,
        incoming: { token: `s${i}-token` },
        outgoing: { url: `http://127.0.0.1:${port}/`, token: `farm-to-s${i}` },
      })),
      { id: 'hosted', relation: 'child', assetCode: 'USD', assetScale: 6 },
      { id: 'own', relation: 'child', assetCode: 'USD', assetScale: 6, incoming: { token: 'own-token' }, outgoing: { url: `http://127.0.0.1:${ownPort}/`, token: 'farm-to-own' } },
    ],
  }
  const configFile = join(tmp, 'farm.json')
  writeFileSync(configFile, JSON.stringify(config))
  const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: redis.url }
  delete env.REDIS_CLUSTER
  const farm = spawn(process.execPath, [FARM_MAIN, 'start', '--config', configFile], { cwd: packageRoot(), env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const plugins: Plugin[] = []
  try {
    const { url } = await untilListening(farm, 30_000)
    const workers = childPids(farm.pid!)
    // the child's own receiver: a STREAM server behind its ILP-over-HTTP endpoint
    const ownPlugin = new PluginHttp({ incoming: { port: ownPort, staticToken: 'farm-to-own' }, outgoing: { url: `${url}/accounts/own/ilp`, staticToken: 'own-token' } })
    plugins.push(ownPlugin)
    const ownServer = await createServer({ plugin: ownPlugin })
    ownServer.on('connection', (conn: { on(e: 'stream', f: (s: DataAndMoneyStream) => void): void }) => conn.on('stream', (s) => s.setReceiveMax(Infinity)))
    const senders = senderPorts.map((port, i) => {
      const plugin = new PluginHttp({ incoming: { port, staticToken: `farm-to-s${i}` }, outgoing: { url: `${url}/accounts/s${i}/ilp`, staticToken: `s${i}-token` } })
      plugins.push(plugin)
      return plugin
    })
    for (const mode of ['hosted', 'own'] as const) {
      let payments = 0
      let packets = 0
      let failed = 0
      const deadline = Date.now() + SECONDS * 1000
      const before = { farm: cpu(workers), redis: cpu([redis.process.pid!]), at: performance.now() }
      await Promise.all(
        senders.map(async (plugin) => {
          while (Date.now() < deadline) {
            let destinationAccount: string
            let sharedSecret: Buffer
            if (mode === 'hosted') {
              const res = await request(`${url}/accounts/hosted/spsp`)
              const body = (await res.body.json()) as { destination_account: string; shared_secret: string }
              destinationAccount = body.destination_account
              sharedSecret = Buffer.from(body.shared_secret, 'base64')
            } else {
              ;({ destinationAccount, sharedSecret } = ownServer.generateAddressAndSecret())
            }
            try {
              const connection = await createConnection({ plugin, destinationAccount, sharedSecret })
              const stream = connection.createStream()
              await stream.sendTotal(PAYMENT, { timeout: 30_000 })
              packets += Math.ceil(PAYMENT / Number(PACKET))
              payments++
              await connection.destroy()
            } catch {
              failed++
            }
          }
        }),
      )
      const seconds = (performance.now() - before.at) / 1000
      const farmCpu = cpu(workers) - before.farm
      const redisCpu = cpu([redis.process.pid!]) - before.redis
      console.log(
        `${mode.padEnd(6)}  ${(payments / seconds).toFixed(1).padStart(7)} payments/s  ${(packets / seconds).toFixed(0).padStart(6)} money packets/s` +
          `  farm ${(farmCpu / packets).toFixed(0).padStart(4)} us/pkt  redis ${(redisCpu / packets).toFixed(0).padStart(3)} us/pkt  failed ${failed}`,
      )
    }
    await ownServer.close()
  } finally {
    await Promise.allSettled(plugins.map((p) => p.disconnect()))
    await stopFarm(farm)
    await redis.stop()
    rmSync(tmp, { recursive: true, force: true })
  }
}

/** The receiver's work on one packet, in µs: packets made by a real sender, each answered again and again. */
async function receiverWork(): Promise<void> {
  const server = new StreamServer({ serverSecret: Buffer.alloc(32, 7), serverAddress: 'test.farm.bob.~stream' })
  const { ilpAddress, sharedSecret } = server.generateCredentials({ asset: { code: 'USD', scale: 6 } })
  const money: IlpPrepare[] = []
  const plugin = {
    connect: () => Promise.resolve(),
    disconnect: () => Promise.resolve(),
    isConnected: () => true,
    registerDataHandler: () => undefined,
    deregisterDataHandler: () => undefined,
    sendData: async (data: Buffer): Promise<Buffer> => {
      const prepare = deserializeIlpPrepare(data)
      if (prepare.destination === 'peer.config') return serveIldcp({ requestPacket: data, handler: () => Promise.resolve({ clientAddress: 'test.farm.alice', assetCode: 'USD', assetScale: 6 }), serverAddress: 'test.farm' })
      const reply = server.createReply(prepare)
      if ('accept' in reply) {
        money.push(prepare)
        return serializeIlpFulfill(reply.accept())
      }
      return serializeIlpReply(reply)
    },
  }
  const connection = await createConnection({ plugin, destinationAccount: ilpAddress, sharedSecret, maximumPacketAmount: PACKET })
  await connection.createStream().sendTotal(Number(PACKET) * 200)
  await connection.destroy()
  const rounds = Math.ceil(20_000 / money.length)
  const started = performance.now()
  for (let r = 0; r < rounds; r++) {
    for (const prepare of money) {
      const reply = server.createReply(prepare)
      if ('accept' in reply) serializeIlpFulfill(reply.accept())
    }
  }
  const us = ((performance.now() - started) * 1000) / (rounds * money.length)
  console.log(`receiver work per packet (in this process, ${rounds * money.length} answers of ${money.length} real packets): ${us.toFixed(1)} us`)
}

console.log(`${SENDERS} senders, payments of ${PAYMENT} in packets of at most ${PACKET}, ${SECONDS} s per mode; CPU per money packet (probes and connection setup included in the farm's CPU)`)
main().then(receiverWork).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err)
    process.exit(1)
  },
)
