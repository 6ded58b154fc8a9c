/**
 * What the packet scripts cost Redis, per packet (a prepare and its fulfill),
 * measured on their own: the Ledger sends packets at a fixed concurrency to a
 * redis-server this script starts (no persistence), as one chained call per
 * step (one Redis) and as one call per account (the calls a cluster makes).
 * Prints, per mode and run: FCALLs and commands per packet, the time Redis
 * spent inside FCALL (INFO commandstats) and redis-server's CPU (Linux /proc)
 * per packet. With --callgrind (valgrind installed), redis-server runs under
 * callgrind and the count of instructions it executed per packet is printed
 * too: a number that does not move with the machine's load, for comparing two
 * versions of the scripts (the times are then callgrind's, much slower).
 *
 *   npm run build && node dist/scripts/bench-scripts.js [--packets 20000] [--concurrency 50] [--runs 3] [--callgrind]
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Redis } from 'ioredis'
import { cpuOf } from '../src/bench/measure.js'
import { freePort } from '../src/farm/embedded-redis.js'
import { Ledger } from '../src/store/ledger.js'

const { values } = parseArgs({
  options: {
    packets: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '50' },
    runs: { type: 'string', default: '3' },
    callgrind: { type: 'boolean', default: false },
  },
})
const packets = Number(values.packets)
const concurrency = Number(values.concurrency)
const runs = Number(values.runs)
const callgrind = values.callgrind === true
if (!(packets > 0 && concurrency > 0 && runs > 0)) throw new Error('--packets, --concurrency and --runs must be positive integers')

interface Server {
  process: ChildProcess
  port: number
  dir: string
}

async function startRedis(): Promise<Server> {
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'ilp-farm-bench-scripts-'))
  const redisArgs = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  const child = callgrind
    ? spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'callgrind.out')}`, 'redis-server', ...redisArgs], { stdio: 'ignore' })
    : spawn('redis-server', redisArgs, { stdio: 'ignore' })
  const probe = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
  for (let i = 0; ; i++) {
    try {
      await probe.connect()
      await probe.ping()
      break
    } catch {
      if (i > 300 || child.exitCode !== null) throw new Error('redis-server did not start' + (callgrind ? ' under valgrind (is it installed?)' : ''))
      probe.disconnect()
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  probe.disconnect()
  return { process: child, port, dir }
}

/** Instructions redis-server executed since the last zeroing: callgrind dumps its counts, the total is read back. */
function callgrindInstructions(server: Server): number {
  execFileSync('callgrind_control', ['--dump', String(server.process.pid)], { stdio: 'ignore' })
  const dumps = readdirSync(server.dir).filter((f) => f.startsWith('callgrind.out.'))
  const latest = dumps.sort((a, b) => Number(a.split('.').pop()) - Number(b.split('.').pop())).pop()
  const text = latest ? readFileSync(join(server.dir, latest), 'utf8') : ''
  const total = /^(?:summary|totals): (\d+)/m.exec(text)
  if (!total) throw new Error('no callgrind totals')
  return Number(total[1])
}

async function sendPackets(ledger: Ledger, count: number): Promise<void> {
  let next = 0
  const expiresAtMs = Date.now() + 600_000
  const sender = async () => {
    while (next < count) {
      const packetId = `bench-${next++}-${ledger.bootId}`
      const prepared = await ledger.prepare({
        incomingAccount: 'alice',
        packetId,
        shard: 0,
        inAmount: '100',
        outgoingAccount: 'bob',
        outAmount: '100',
        expiresAtMs,
        minBalance: '-1000000000000',
        maxBalance: undefined,
        parallelism: 8,
      })
      if (prepared !== 'ok') throw new Error(`prepare: ${prepared}`)
      const fulfilled = await ledger.fulfill('alice', packetId, 'bob')
      if (fulfilled !== 'ok') throw new Error(`fulfill: ${fulfilled}`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, sender))
}

function commandStats(info: string): { calls: number; fcalls: number; fcallMicros: number } {
  let calls = 0
  let fcalls = 0
  let fcallMicros = 0
  for (const m of info.matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    if (m[1] === 'config' || m[1] === 'info') continue
    calls += Number(m[2])
    if (m[1] === 'fcall') {
      fcalls = Number(m[2])
      fcallMicros = Number(m[3])
    }
  }
  return { calls, fcalls, fcallMicros }
}

const server = await startRedis()
const client = new Redis({ port: server.port })
try {
  console.log(
    `bench-scripts: ${packets} packets per run (prepare + fulfill, 100 units, one sender and one next hop), concurrency ${concurrency}, ${runs} run(s)${callgrind ? ', redis-server under callgrind' : ''}`,
  )
  console.log('mode      run  fcall/pkt  cmds/pkt  fcall us/pkt  redis cpu us/pkt' + (callgrind ? '  instructions/pkt' : ''))
  for (const [mode, split] of [
    ['one Redis', false],
    ['cluster  ', true],
  ] as const) {
    for (let run = 1; run <= runs; run++) {
      await client.flushall()
      const ledger = new Ledger(client, `bench${run}:`, { split })
      await ledger.load()
      await sendPackets(ledger, Math.min(2000, packets)) // warm-up: the scripts compiled, the hashes grown
      await client.config('RESETSTAT')
      if (callgrind) execFileSync('callgrind_control', ['--zero', String(server.process.pid)], { stdio: 'ignore' })
      const cpuBefore = cpuOf([server.process.pid!])
      await sendPackets(ledger, packets)
      const instructions = callgrind ? callgrindInstructions(server) : undefined
      const cpuAfter = cpuOf([server.process.pid!])
      const stats = commandStats(await client.info('commandstats'))
      const cpu = cpuBefore !== undefined && cpuAfter !== undefined ? ((cpuAfter - cpuBefore) / packets).toFixed(1) : 'n/a'
      console.log(
        `${mode} ${String(run).padStart(4)}  ${(stats.fcalls / packets).toFixed(3).padStart(9)}  ${(stats.calls / packets).toFixed(2).padStart(8)}  ${(stats.fcallMicros / packets).toFixed(1).padStart(12)}  ${cpu.padStart(16)}` +
          (instructions === undefined ? '' : `  ${Math.round(instructions / packets).toString().padStart(16)}`),
      )
    }
  }
} finally {
  client.disconnect()
  server.process.kill('SIGKILL')
  rmSync(server.dir, { recursive: true, force: true })
}
