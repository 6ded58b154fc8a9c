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
  /** The one registered function: a batch of packet transitions (see BATCH_FUNCTION). */
  batch: string
}

/**
 * How a batch names each transition, how many account keys it takes (after
 * the hotSet key) and how many arguments.
 */
export const TRANSITION_CODES: Record<Transition, { code: string; keys: number; args: number }> = {
  prepare: { code: 'p', keys: 2, args: 10 },
  fulfill: { code: 'f', keys: 1, args: 2 },
  reject: { code: 'r', keys: 2, args: 4 },
}

let cached: FunctionLibrary | undefined

/**
 * The registered function takes a batch of packet transitions, of any kinds,
 * in the order they were made. KEYS: the hotSet key, then each account
 * key the batch touches, once. ARGV: for each packet, the transition's code
 * (TRANSITION_CODES), the KEYS index of each account key it takes, then its
 * own arguments. Each packet runs through its transition on its own, in
 * order, inside pcall: one packet's error is that packet's reply, never the
 * batch's.
 */
const BATCH_FUNCTION = `
local TRANSITIONS = {
  ${TRANSITIONS.map((t) => `${TRANSITION_CODES[t].code} = { transition_${t}, ${TRANSITION_CODES[t].keys}, ${TRANSITION_CODES[t].args}, {}, {} }`).join(',\n  ')},
}

local function batch(keys, args)
  local out = {}
  local i, n = 1, 0
  while i <= #args do
    n = n + 1
    local t = TRANSITIONS[args[i]]
    if not t then
      -- the rest of the batch cannot be read
      out[n] = redis.error_reply('ERR unknown transition ' .. tostring(args[i]))
      break
    end
    -- each kind's KEYS and ARGV tables are reused: its arity is fixed, so every
    -- entry is written again for each packet, and no transition keeps them
    local perKeys, perArgs, k, a = t[2], t[3], t[4], t[5]
    k[1] = keys[1]
    for j = 1, perKeys do k[1 + j] = keys[tonumber(args[i + j])] end
    i = i + 1 + perKeys
    for j = 1, perArgs do a[j] = args[i + j - 1] end
    i = i + perArgs
    local ok, result = pcall(t[1], k, a)
    if ok then
      out[n] = result
    elseif type(result) == 'table' and result.err then
      out[n] = redis.error_reply(result.err)
    else
      out[n] = redis.error_reply(tostring(result))
    end
  end
  return out
end`

/**
 * The scripts of lua/ as one Redis Functions library: the shared helpers are
 * defined once when the library loads, each transition (lua/<name>.lua,
 * written against KEYS and ARGV for one packet) becomes a local function, and
 * one registered function runs a batch of them.
 */
export function functionLibrary(): FunctionLibrary {
  if (cached) return cached
  const luaDir = join(packageRoot(), 'lua')
  const read = (file: string): string => readFileSync(join(luaDir, file), 'utf8')
  const body = [
    ...LIBRARIES.map(read),
    ...TRANSITIONS.map((t) => `local function transition_${t}(KEYS, ARGV)\n${read(`${t}.lua`)}\nend`),
    BATCH_FUNCTION,
  ].join('\n')
  const name = `ilpfarm_${createHash('sha1').update(body).digest('hex').slice(0, 12)}`
  const batch = `${name}_batch`
  cached = { name, code: `#!lua name=${name}\n${body}\nredis.register_function('${batch}', batch)\n`, batch }
  return cached
}
