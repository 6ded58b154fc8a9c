import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../util/package-root.js'
import { isCluster, type RedisClient } from './redis.js'

/**
 * A Lua script from lua/ (with optional shared files in front), run with
 * EVALSHA, and with EVAL once when Redis does not have it (restarted, SCRIPT
 * FLUSH). For the farm's housekeeping scripts; the packet transitions are a
 * Redis Functions library (scripts.ts).
 */
export class LuaScript {
  private readonly lua: string
  private readonly sha: string

  constructor(file: string, preludes: string[] = []) {
    const read = (f: string) => readFileSync(join(packageRoot(), 'lua', f), 'utf8')
    this.lua = [...preludes.map(read), read(file)].join('\n')
    this.sha = createHash('sha1').update(this.lua).digest('hex')
  }

  /** Makes sure Redis has the script (SCRIPT LOAD; on a cluster on every master), so a pipeline of `command`s needs no NOSCRIPT retry. */
  async load(redis: RedisClient): Promise<void> {
    if (isCluster(redis)) await Promise.all(redis.nodes('master').map((node) => node.script('LOAD', this.lua)))
    else await redis.script('LOAD', this.lua)
  }

  /** The call as a pipeline command, by digest: call `load` first (the script text is not sent with each call). */
  command(keys: string[], args: Array<string | number>): [string, ...Array<string | number>] {
    return ['evalsha', this.sha, keys.length, ...keys, ...args]
  }

  async run(redis: RedisClient, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err
      return redis.eval(this.lua, keys.length, ...keys, ...args)
    }
  }

  /**
   * Many calls, each result in order (throws the first error). On one Redis
   * one pipeline by digest; on a cluster each call on its own (the client
   * auto-pipelines per node: one pipeline may not span slots), with EVAL
   * where a master lacks the script.
   */
  async runMany(redis: RedisClient, calls: ReadonlyArray<{ keys: string[]; args: Array<string | number> }>): Promise<unknown[]> {
    if (calls.length === 0) return []
    if (isCluster(redis)) return Promise.all(calls.map((c) => this.run(redis, c.keys, c.args)))
    await this.load(redis)
    const results = (await redis.pipeline(calls.map((c) => this.command(c.keys, c.args))).exec()) ?? []
    return results.map(([err, value]) => {
      if (err) throw err
      return value
    })
  }
}
