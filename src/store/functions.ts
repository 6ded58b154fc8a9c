import type { Cluster, Redis } from 'ioredis'
import { isCluster, type RedisClient } from './redis.js'

/**
 * Keeps a Redis Functions library loaded where FCALL runs: on one Redis, or
 * on every master of a cluster. FUNCTION LOAD on a master reaches its
 * replicas, so a replica promoted after a failover has it already; a master
 * that joins later (added to the cluster, or a node that lost its data) gets
 * it when the client first sees it as a master. And a call that still meets
 * a master without it loads it everywhere and runs again (callWithFunctionRetry).
 */
export interface FunctionLibrarySource {
  /** The library's name (`#!lua name=<name>`). */
  name: string
  /** The FUNCTION LOAD payload. */
  code: string
}

/** What Redis answers to an FCALL of a function it does not have (7.0 and later). */
const FUNCTION_MISSING = /Function not found/i

interface Tracked {
  libraries: Map<string, FunctionLibrarySource>
  /** Masters (host:port) known to have every library, cleared for a node the client lost. */
  loaded: Set<string>
  sweeping: Promise<void> | undefined
  again: boolean
}

const tracked = new WeakMap<RedisClient, Tracked>()

function nodeKey(node: Redis): string {
  return `${node.options.host ?? ''}:${node.options.port ?? ''}`
}

async function loadOn(node: Redis, libraries: Iterable<FunctionLibrarySource>): Promise<void> {
  for (const library of libraries) await node.call('FUNCTION', 'LOAD', 'REPLACE', library.code)
}

/** Loads the libraries on every master the cluster client knows of that does not have them yet. */
async function sweep(cluster: Cluster, state: Tracked): Promise<void> {
  if (state.sweeping) {
    state.again = true
    return state.sweeping
  }
  const run = async (): Promise<void> => {
    do {
      state.again = false
      const masters = cluster.nodes('master').filter((node) => !state.loaded.has(nodeKey(node)))
      await Promise.all(
        masters.map(async (node) => {
          await loadOn(node, state.libraries.values())
          state.loaded.add(nodeKey(node))
        }),
      )
    } while (state.again)
  }
  state.sweeping = run().finally(() => {
    state.sweeping = undefined
  })
  return state.sweeping
}

function track(client: RedisClient): Tracked {
  let state = tracked.get(client)
  if (state) return state
  const fresh: Tracked = { libraries: new Map(), loaded: new Set(), sweeping: undefined, again: false }
  state = fresh
  tracked.set(client, fresh)
  const background = (load: () => Promise<void>) =>
    void load().catch(() => {
      // a node that is not reachable now: the next refresh, or the first call that misses the library, loads it
    })
  if (isCluster(client)) {
    // a new node, a slot map read again (after a failover or a MOVED), a reconnect: masters the client had not seen get it
    client.on('+node', () => background(() => sweep(client, fresh)))
    client.on('-node', (node: Redis) => fresh.loaded.delete(nodeKey(node)))
    client.on('refresh', () => background(() => sweep(client, fresh)))
    client.on('ready', () => background(() => sweep(client, fresh)))
  } else {
    // a Redis restarted without its data has no functions: load them again at each reconnect
    let first = true
    client.on('ready', () => {
      if (!first) background(() => loadOn(client, fresh.libraries.values()))
      first = false
    })
    if (client.status === 'ready') first = false
  }
  return state
}

/**
 * FUNCTION LOAD REPLACE `library` on one Redis, or on every master of a
 * cluster, and keeps it loaded on masters that appear later (see above).
 * Resolves once every master known now has it; rejects if one refused it.
 */
export async function ensureFunctionsLoaded(client: RedisClient, library: FunctionLibrarySource): Promise<void> {
  const state = track(client)
  state.libraries.set(library.name, library)
  if (!isCluster(client)) {
    await loadOn(client, [library])
    return
  }
  // every master again: one that had an older version of the library gets this one
  await Promise.all(client.nodes('master').map((node) => loadOn(node, [library])))
  await sweep(client, state)
}

/** Whether `err` says the function called is not loaded on the node that ran the call. */
export function isFunctionMissing(err: unknown): boolean {
  return err instanceof Error && FUNCTION_MISSING.test(err.message)
}

/**
 * Runs `send` (an FCALL of a library given to ensureFunctionsLoaded); when
 * the node that got it does not have the function, loads the libraries on
 * every master and runs it once more. A second miss is the caller's error.
 */
export async function callWithFunctionRetry<T>(client: RedisClient, send: () => Promise<T>): Promise<T> {
  try {
    return await send()
  } catch (err) {
    const state = tracked.get(client)
    if (!isFunctionMissing(err) || state === undefined || state.libraries.size === 0) throw err
    if (isCluster(client)) {
      // every master, not only those not seen yet: the one that answered may have lost its functions
      state.loaded.clear()
      await sweep(client, state)
    } else {
      await loadOn(client, state.libraries.values())
    }
    return send()
  }
}
