import { execFile } from 'node:child_process'
import { mkdirSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { Redis } from 'ioredis'
import { type EmbeddedRedis, startEmbeddedRedis } from './embedded-redis.js'

/**
 * A real Redis Cluster on loopback: `masters` primaries with `replicasPerMaster`
 * replicas each, every node a redis-server child with its own port (and the
 * cluster bus on port + 10000), created with `redis-cli --cluster create`.
 * For the tests and the bench: what the farm meets on a production cluster,
 * failover included, on one machine.
 */
export interface LocalCluster {
  /** Every node, in the order they were started. */
  readonly nodes: readonly ClusterNode[]
  /** Seed URLs for a cluster client (`redis.cluster`). */
  readonly seeds: readonly string[]
  /** The nodes that are masters now (asks the cluster). */
  masters(): Promise<ClusterNode[]>
  /** Resolves once every slot is served and every master has its replicas, or rejects after `timeoutMs`. */
  waitHealthy(timeoutMs?: number): Promise<void>
  /** SIGKILLs one node (a crash, no shutdown). */
  kill(node: ClusterNode): void
  /** Starts one more node and joins it to the cluster as a master without slots (`redis-cli --cluster add-node`). */
  addNode(): Promise<ClusterNode>
  /** Moves one slot, and its keys, to `to` (a master): IMPORTING/MIGRATING, MIGRATE, then SETSLOT NODE on every master. */
  moveSlot(slot: number, to: ClusterNode): Promise<void>
  stop(): Promise<void>
}

export interface ClusterNode {
  readonly port: number
  readonly url: string
  readonly redis: EmbeddedRedis
}

export interface LocalClusterOptions {
  dataDir: string
  masters?: number
  replicasPerMaster?: number
  /** cluster-node-timeout: how long a silent master has before its replica takes over. */
  nodeTimeoutMs?: number
  /**
   * Each node's append-only file (everysec), as docs/SCALING.md has operators run it; default off, for
   * tests that need no persistence. The bench turns it on, so that the cluster is compared with a
   * single Redis that has its own.
   */
  appendonly?: boolean
  redisCli?: string
}

const run = promisify(execFile)

/** A port free on loopback whose cluster bus port (port + 10000) is free too. */
async function freeClusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if ((await isFree(port)) && (await isFree(port + 10_000))) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const server = createServer()
    server.once('error', () => done(false))
    server.listen(port, '127.0.0.1', () => server.close(() => done(true)))
  })
}

export async function startLocalCluster(opts: LocalClusterOptions): Promise<LocalCluster> {
  let masters = opts.masters ?? 3
  const replicas = opts.replicasPerMaster ?? 1
  const nodeTimeoutMs = opts.nodeTimeoutMs ?? 1_000
  const taken = new Set<number>()
  const nodes: ClusterNode[] = []
  const startNode = async (port: number): Promise<ClusterNode> => {
    const dataDir = join(opts.dataDir, String(port))
    mkdirSync(dataDir, { recursive: true })
    const redis = await startEmbeddedRedis({
      dataDir,
      port,
      appendonly: opts.appendonly === true,
      extraArgs: [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dataDir, 'nodes.conf'),
        '--cluster-node-timeout', String(nodeTimeoutMs),
        // a replica syncs at once (the default waits 5 s for more replicas): one that never synced cannot take over
        '--repl-diskless-sync-delay', '0',
      ],
    })
    return { port, url: redis.url, redis }
  }
  try {
    const ports = []
    for (let i = 0; i < masters * (1 + replicas); i++) ports.push(await freeClusterPort(taken))
    const started = await Promise.all(ports.map(startNode))
    nodes.push(...started)
    await run(opts.redisCli ?? 'redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      timeout: 60_000,
    })
  } catch (err) {
    await Promise.allSettled(nodes.map((n) => n.redis.stop()))
    throw err
  }

  const ask = async <T>(node: ClusterNode, fn: (client: Redis) => Promise<T>): Promise<T | undefined> => {
    if (node.redis.process.exitCode !== null || node.redis.process.signalCode !== null) return undefined
    const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1_000 })
    client.on('error', () => undefined) // a node being killed: the call fails, and that is the answer
    try {
      await client.connect()
      return await fn(client)
    } catch {
      return undefined
    } finally {
      client.disconnect()
    }
  }

  const cluster: LocalCluster = {
    nodes,
    seeds: nodes.map((n) => n.url),
    async masters() {
      const roles = await Promise.all(nodes.map((n) => ask(n, async (c) => /role:(\w+)/.exec(await c.info('replication'))?.[1])))
      return nodes.filter((_, i) => roles[i] === 'master')
    },
    async waitHealthy(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs
      for (;;) {
        const states = await Promise.all(nodes.map((n) => ask(n, async (c) => /cluster_state:(\w+)/.exec(await c.cluster('INFO') as string)?.[1])))
        const alive = states.filter((s) => s !== undefined)
        const mastersNow = await cluster.masters()
        // every live replica has synced with its master: only then can it take over
        const links = await Promise.all(nodes.map((n) => ask(n, async (c) => {
          const info = await c.info('replication')
          return /role:master/.test(info) || /master_link_status:up/.test(info)
        })))
        const synced = links.every((up) => up !== false)
        if (alive.length > 0 && alive.every((s) => s === 'ok') && mastersNow.length === masters && synced) return
        if (Date.now() > deadline) throw new Error(`cluster not healthy after ${timeoutMs} ms: states ${JSON.stringify(states)}, ${mastersNow.length} masters`)
        await new Promise((r) => setTimeout(r, 100))
      }
    },
    kill(node) {
      node.redis.process.kill('SIGKILL')
    },
    async addNode() {
      const node = await startNode(await freeClusterPort(taken))
      nodes.push(node)
      const [seed] = await cluster.masters()
      if (!seed) throw new Error('no master to join')
      await run(opts.redisCli ?? 'redis-cli', ['--cluster', 'add-node', `127.0.0.1:${node.port}`, `127.0.0.1:${seed.port}`], { timeout: 60_000 })
      masters++
      await cluster.waitHealthy()
      return node
    },
    async moveSlot(slot, to) {
      const ids = new Map<ClusterNode, string>()
      for (const node of await cluster.masters()) ids.set(node, String(await ask(node, (c) => c.cluster('MYID'))))
      const owner = await ask(to, async (c) => {
        const ranges = await c.cluster('SLOTS')
        return ranges.find(([from, until]) => from <= slot && slot <= until)?.[2]?.[2]
      })
      const source = [...ids].find(([, id]) => id === owner)?.[0]
      const target = ids.get(to)
      if (!source || !target || !owner) throw new Error(`slot ${slot}: no owner, or ${to.url} is not a master`)
      if (source === to) return
      const on = async <T>(node: ClusterNode, fn: (client: Redis) => Promise<T>): Promise<T> => {
        const client = new Redis(node.url, { lazyConnect: true, maxRetriesPerRequest: 0 })
        client.on('error', () => undefined)
        try {
          await client.connect()
          return await fn(client)
        } finally {
          client.disconnect()
        }
      }
      await on(to, (c) => c.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', owner))
      await on(source, async (c) => {
        await c.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', target)
        for (;;) {
          const keys = (await c.call('CLUSTER', 'GETKEYSINSLOT', slot, 100)) as string[]
          if (keys.length === 0) break
          await c.call('MIGRATE', '127.0.0.1', to.port, '', 0, 5000, 'KEYS', ...keys)
        }
      })
      for (const node of ids.keys()) await on(node, (c) => c.call('CLUSTER', 'SETSLOT', slot, 'NODE', target))
    },
    async stop() {
      await Promise.allSettled(nodes.map((n) => n.redis.stop()))
      rmSync(opts.dataDir, { recursive: true, force: true })
    },
  }
  try {
    await cluster.waitHealthy()
  } catch (err) {
    await cluster.stop()
    throw err
  }
  return cluster
}
