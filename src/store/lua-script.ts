import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Cluster, Redis } from 'ioredis'
import { packageRoot } from '../util/package-root.js'

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

  /** Makes sure Redis has the script (SCRIPT LOAD), so a pipeline of `command`s needs no NOSCRIPT retry. */
  async load(redis: Redis): Promise<void> {
    await redis.script('LOAD', this.lua)
  }

  /** The call as a pipeline command, by digest: call `load` first (the script text is not sent with each call). */
  command(keys: string[], args: Array<string | number>): [string, ...Array<string | number>] {
    return ['evalsha', this.sha, keys.length, ...keys, ...args]
  }

  async run(redis: Redis | Cluster, keys: string[], args: Array<string | number>): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args)
    } catch (err) {
      if (!/NOSCRIPT/.test((err as Error).message)) throw err
      return redis.eval(this.lua, keys.length, ...keys, ...args)
    }
  }
}
