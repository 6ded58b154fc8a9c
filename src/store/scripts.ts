import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../util/package-root.js'

const LIBRARIES = ['lib/bigint.lua', 'lib/entry.lua']
const TRANSITIONS = ['prepare', 'fulfill', 'reject'] as const
export type Transition = (typeof TRANSITIONS)[number]

export interface FunctionLibrary {
  /** Library name, versioned by its code so farms of different versions can share a Redis. */
  name: string
  /** The FUNCTION LOAD payload. */
  code: string
  /** Registered function name of each packet transition. */
  functions: Record<Transition, string>
}

let cached: FunctionLibrary | undefined

/**
 * The scripts of lua/ as one Redis Functions library: the shared helpers are
 * defined once when the library loads, and each transition (lua/<name>.lua,
 * written against KEYS and ARGV) becomes a registered function.
 */
export function functionLibrary(): FunctionLibrary {
  if (cached) return cached
  const luaDir = join(packageRoot(), 'lua')
  const read = (file: string): string => readFileSync(join(luaDir, file), 'utf8')
  const body = [
    ...LIBRARIES.map(read),
    ...TRANSITIONS.map((t) => `local function transition_${t}(KEYS, ARGV)\n${read(`${t}.lua`)}\nend`),
  ].join('\n')
  const name = `ilpfarm_${createHash('sha1').update(body).digest('hex').slice(0, 12)}`
  const functions = Object.fromEntries(TRANSITIONS.map((t) => [t, `${name}_${t}`])) as Record<Transition, string>
  const registrations = TRANSITIONS.map((t) => `redis.register_function('${functions[t]}', transition_${t})`).join('\n')
  cached = { name, code: `#!lua name=${name}\n${body}\n${registrations}\n`, functions }
  return cached
}
