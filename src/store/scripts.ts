import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { packageRoot } from '../util/package-root.js'

const LIBRARIES = ['lib/bigint.lua', 'lib/entry.lua']

/**
 * The packet transitions (lua/packet/<name>.lua): each takes the keys of one
 * account, so each touches one hash slot.
 */
const TRANSITIONS = [
  'prepare-incoming',
  'prepare-outgoing',
  'fulfill-incoming',
  'fulfill-outgoing',
  'reject-outgoing',
  'reject-incoming',
  'transfer-begin',
  'transfer-apply',
  'transfer-end',
] as const
export type Transition = (typeof TRANSITIONS)[number]

/**
 * The chains of transitions one packet step takes, run as one call where all
 * their keys live on one Redis (a single Redis: every slot is on it). On a
 * cluster the ledger runs the same transitions one by one, in the same order.
 */
export type Chain = 'prepare' | 'fulfill' | 'reject'
export type Operation = Transition | Chain

export interface FunctionLibrary {
  /** Library name, versioned by its code so farms of different versions can share a Redis. */
  name: string
  /** The FUNCTION LOAD payload. */
  code: string
  /** The one registered function: a batch of operations (see BATCH_FUNCTION). */
  batch: string
}

/** How a batch names each operation, how many keys it takes and how many arguments. */
export const OPERATION_CODES: Record<Operation, { code: string; keys: number; args: number }> = {
  'prepare-incoming': { code: 'pi', keys: 3, args: 13 },
  'prepare-outgoing': { code: 'po', keys: 2, args: 8 },
  'fulfill-incoming': { code: 'fi', keys: 2, args: 6 },
  'fulfill-outgoing': { code: 'fo', keys: 2, args: 3 },
  'reject-outgoing': { code: 'ro', keys: 2, args: 4 },
  'reject-incoming': { code: 'ri', keys: 2, args: 4 },
  'transfer-begin': { code: 'tb', keys: 1, args: 1 },
  'transfer-apply': { code: 'ta', keys: 2, args: 3 },
  'transfer-end': { code: 'te', keys: 1, args: 2 },
  // KEYS: incoming account, its in-flight records, outgoing account, its credits (prepare: then the incoming rate window)
  // prepare ARGV: prepare-incoming's thirteen, then the outgoing field and maxBalance
  prepare: { code: 'P', keys: 5, args: 15 },
  // fulfill ARGV: packet id, owner, attempt, outgoing account id, outgoing field
  fulfill: { code: 'F', keys: 4, args: 5 },
  // reject ARGV: packet id, owner, attempt, outgoing field, not before
  reject: { code: 'R', keys: 4, args: 5 },
}

const luaName = (t: string) => `transition_${t.replace('-', '_')}`

/**
 * The chains, in Lua, from the transitions: the order of the steps is what
 * keeps a packet's two records consistent (lua/lib/entry.lua).
 */
const CHAIN_FUNCTIONS = `
-- On one Redis a packet's records are written, decided and released in one
-- call each, so nothing can see one record without the other: the outgoing
-- record is written only where it reserves the next hop's maxBalance, and a
-- fulfill without one credits the outgoing amount its incoming record holds.
-- With a maxBalance, the outgoing side is checked before either side is
-- written (one call: nothing runs in between), so a prepare refused for the
-- next hop's limit changes nothing; its write can then refuse only an id
-- whose earlier credit is still owed: rare, and undone by the refund. The
-- undo also runs when the two accounts are one, whose incoming write the
-- outgoing check then sees.
local function chain_prepare(keys, args)
  -- the incoming transition reads args[1..13] only: its ARGV as they stand
  local incoming = args
  if args[15] == '' then return transition_prepare_incoming({ keys[1], keys[2], keys[5] }, incoming) end
  local outgoing = { args[14], args[3], args[4], args[5], args[8], args[15], '1', '1' }
  local result = transition_prepare_outgoing({ keys[3], keys[4] }, outgoing)
  if result ~= 'OK' then return result end
  result = transition_prepare_incoming({ keys[1], keys[2], keys[5] }, incoming)
  if result ~= 'OK' then return result end
  outgoing[7] = ''
  result = transition_prepare_outgoing({ keys[3], keys[4] }, outgoing)
  if result ~= 'OK' then transition_reject_incoming({ keys[1], keys[2] }, { args[1], args[3], args[4], '' }) end
  return result
end

local function chain_reject(keys, args)
  local result = transition_reject_outgoing({ keys[3], keys[4] }, { args[4], args[2], args[3], args[5] })
  if result == 'EARLY' then return result end
  return transition_reject_incoming({ keys[1], keys[2] }, { args[1], args[2], args[3], args[5] })
end

-- An outgoing record without its incoming one is a fulfilled packet: a
-- retried fulfill whose first try landed (its answer lost) still credits it.
-- An empty outgoing field: the reservation wrote no outgoing record (its
-- prepare had no maxBalance), so there is none of its own to look for.
local function chain_fulfill(keys, args)
  local result, record = transition_fulfill_incoming({ keys[2], keys[2] }, { args[1], args[2], args[3], args[4], '1', '' })
  local credited = 'GONE'
  if args[5] ~= '' then credited = transition_fulfill_outgoing({ keys[3], keys[4] }, { args[5], args[2], args[3] }) end
  if result == 'OK' and credited ~= 'OK' then hash_add(keys[3], 'cold', record.outAmount) end
  if result == 'GONE' and credited == 'OK' then return 'OK' end
  return result
end
`

const functionOf: Record<Operation, string> = {
  ...(Object.fromEntries(TRANSITIONS.map((t) => [t, luaName(t)])) as Record<Transition, string>),
  prepare: 'chain_prepare',
  fulfill: 'chain_fulfill',
  reject: 'chain_reject',
}

let cached: FunctionLibrary | undefined

/**
 * The registered function takes a batch of operations, of any kinds, in the
 * order they were made. KEYS: each key the batch touches, once. ARGV: for
 * each operation, its code (OPERATION_CODES), the KEYS index of each key it
 * takes, then its own arguments. Each runs on its own, in order, inside
 * pcall: one operation's error is its own reply, never the batch's. On a
 * cluster, a batch holds the operations of one slot.
 */
const BATCH_FUNCTION = `
local OPERATIONS = {
  ${(Object.keys(OPERATION_CODES) as Operation[])
    .map((op) => `${OPERATION_CODES[op].code} = { ${functionOf[op]}, ${OPERATION_CODES[op].keys}, ${OPERATION_CODES[op].args}, {}, {} }`)
    .join(',\n  ')},
}

-- KEYS indexes as the batch writes them ('1', '2', ...): a table lookup of
-- the string costs less than tonumber, which parses through strtod
local KEY_INDEX = {}

local function batch(keys, args)
  reset_clock()
  for j = #KEY_INDEX + 1, #keys do KEY_INDEX[tostring(j)] = j end
  local out = {}
  local i, n = 1, 0
  while i <= #args do
    n = n + 1
    local t = OPERATIONS[args[i]]
    if not t then
      -- the rest of the batch cannot be read
      out[n] = redis.error_reply('ERR unknown operation ' .. tostring(args[i]))
      break
    end
    -- each kind's KEYS and ARGV tables are reused: its arity is fixed, so every
    -- entry is written again for each operation, and none keeps them
    local perKeys, perArgs, k, a = t[2], t[3], t[4], t[5]
    for j = 1, perKeys do k[j] = keys[KEY_INDEX[args[i + j]]] end
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
 * The scripts of lua/packet/ as one Redis Functions library: the shared
 * helpers are defined once when the library loads, each transition (written
 * against KEYS and ARGV for one packet) becomes a local function, the chains
 * call them in order, and one registered function runs a batch.
 */
export function functionLibrary(): FunctionLibrary {
  if (cached) return cached
  const luaDir = join(packageRoot(), 'lua')
  const read = (file: string): string => readFileSync(join(luaDir, file), 'utf8')
  const body = [
    ...LIBRARIES.map(read),
    ...TRANSITIONS.map((t) => `local function ${luaName(t)}(KEYS, ARGV)\n${read(`packet/${t}.lua`)}\nend`),
    CHAIN_FUNCTIONS,
    BATCH_FUNCTION,
  ].join('\n')
  const name = `ilpfarm_${createHash('sha1').update(body).digest('hex').slice(0, 12)}`
  const batch = `${name}_batch`
  cached = { name, code: `#!lua name=${name}\n${body}\nredis.register_function('${batch}', batch)\n`, batch }
  return cached
}
