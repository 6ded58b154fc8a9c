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
 * Every registered function takes a batch of packets: ARGV starts with the
 * number of args and of keys per packet, KEYS with the two hotSet keys the
 * packets share. Each packet runs through its transition on its own, in
 * order, inside pcall: one packet's error is that packet's reply, never the
 * batch's.
 */
const BATCH_WRAPPER = `
local function batched(transition)
  return function(keys, args)
    local perArgs, perKeys = tonumber(args[1]), tonumber(args[2])
    local out = {}
    for i = 0, (#args - 2) / perArgs - 1 do
      local k = { keys[1], keys[2] }
      for j = 1, perKeys do k[2 + j] = keys[2 + i * perKeys + j] end
      local a = {}
      for j = 1, perArgs do a[j] = args[2 + i * perArgs + j] end
      local ok, result = pcall(transition, k, a)
      if ok then
        out[i + 1] = result
      elseif type(result) == 'table' and result.err then
        out[i + 1] = redis.error_reply(result.err)
      else
        out[i + 1] = redis.error_reply(tostring(result))
      end
    end
    return out
  end
end`

/**
 * The scripts of lua/ as one Redis Functions library: the shared helpers are
 * defined once when the library loads, and each transition (lua/<name>.lua,
 * written against KEYS and ARGV for one packet) becomes a registered function
 * taking a batch of packets.
 */
export function functionLibrary(): FunctionLibrary {
  if (cached) return cached
  const luaDir = join(packageRoot(), 'lua')
  const read = (file: string): string => readFileSync(join(luaDir, file), 'utf8')
  const body = [
    ...LIBRARIES.map(read),
    ...TRANSITIONS.map((t) => `local function transition_${t}(KEYS, ARGV)\n${read(`${t}.lua`)}\nend`),
    BATCH_WRAPPER,
  ].join('\n')
  const name = `ilpfarm_${createHash('sha1').update(body).digest('hex').slice(0, 12)}`
  const functions = Object.fromEntries(TRANSITIONS.map((t) => [t, `${name}_${t}`])) as Record<Transition, string>
  const registrations = TRANSITIONS.map((t) => `redis.register_function('${functions[t]}', batched(transition_${t}))`).join('\n')
  cached = { name, code: `#!lua name=${name}\n${body}\n${registrations}\n`, functions }
  return cached
}
