-- A packet in flight is two records, each in the slot of its own account:
--
-- incoming record, in the sender's `{acct:<in>}:inflight` hash:
--   field: <packetId>
--   value: <shard>|<owner>|<attempt>|<expiresAtMs>|<inAmount>|<outAccountId>|<outAmount>
-- outgoing record, in the next hop's `{acct:<out>}:credits` hash:
--   field: <inAccountId>|<packetId>
--   value: <owner>|<attempt>|<expiresAtMs>|<outAmount>|<headroom>
--
-- shard is the worker slot whose hot balance a refund goes back to; owner is
-- the boot id of the worker process that reserved the packet; attempt names
-- this one reservation (unique per owner), so that two records of the same
-- packet id from different reservations are never taken for a pair.
-- headroom is what the outgoing record reserved against the next hop's
-- maxBalance ("0" when it has none).
--
-- The incoming record is the packet's decision: the prepare writes it first,
-- a fulfill deletes it (the debit is final) before the next hop is credited,
-- and a reject releases the outgoing record before it refunds the sender. So
-- an outgoing record without its incoming record was fulfilled (credit it),
-- and an incoming record without its outgoing record was not (refund it).
-- On one Redis, where a step's transitions run as one call, the outgoing
-- record is written only to hold a next hop's maxBalance headroom: the
-- fulfill chain credits the outAmount of the incoming record otherwise. On
-- a cluster such a packet is its incoming record alone too (unless every
-- write must reach a replica): its fulfill owes the credit in the incoming
-- slot (owe_credit below), and transfers move it to the next hop.

local INCOMING = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'
local OUTGOING = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'

local function incoming_parse(value)
  local shard, owner, attempt, expiresAt, inAmount, outAccount, outAmount = string.match(value, INCOMING)
  if not shard then return nil end
  return {
    shard = shard, owner = owner, attempt = attempt, expiresAt = expiresAt,
    inAmount = inAmount, outAccount = outAccount, outAmount = outAmount,
  }
end

local function outgoing_parse(value)
  local owner, attempt, expiresAt, outAmount, headroom = string.match(value, OUTGOING)
  if not owner then return nil end
  return { owner = owner, attempt = attempt, expiresAt = expiresAt, outAmount = outAmount, headroom = headroom }
end

-- Redis' own clock, in ms: the expiry fences compare it with expiresAt. Read
-- once per call (reset_clock at its start): a call runs whole, before or
-- after any other, so the instant it first reads is after every earlier
-- call's, and a batch's transitions all fence against it as one.
local clock_ms = nil
local function now_ms()
  if not clock_ms then
    local t = redis.call('TIME')
    clock_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock_ms
end

-- A library's state outlives its calls: each call that fences starts here.
local function reset_clock()
  clock_ms = nil
end

-- Adds the decimal string `amount` to a hash field: HINCRBY while the field
-- and the result fit a signed 64-bit integer (Redis refuses, changing
-- nothing, when they do not), else exactly on decimal strings.
local function hash_add(key, field, amount)
  if amount == '0' then return end
  if type(redis.pcall('HINCRBY', key, field, amount)) == 'number' then return end
  local v = redis.call('HGET', key, field) or '0'
  redis.call('HSET', key, field, big_add(v, amount))
end

-- sum of cold and every shard's hot balance
local function account_balance(key)
  local all = redis.call('HGETALL', key)
  local balance = '0'
  local credits = '0'
  for i = 1, #all, 2 do
    local f = all[i]
    if f == 'cold' or string.sub(f, 1, 4) == 'hot:' then
      balance = big_add(balance, all[i + 1])
    elseif f == 'creditsInFlight' then
      credits = all[i + 1]
    end
  end
  return balance, credits, all
end

-- Owes `amount` to next hop `out` in an incoming account's owed hash
-- (`key`: o:<out> owed, t:<out> the transfer in progress, n:<out> the last
-- transfer number; lua/packet/transfer-begin.lua) and, unless the pair has a
-- transfer in progress (whose end then says MORE), begins one of all that is
-- owed: returns it as '<seq>|<amount>', or nil. Numbers grow by one and
-- with Redis' clock (ms), so one lost in a failover of this slot's master is
-- never handed out again for a different amount.
local function owe_credit(key, out, amount)
  if redis.call('HEXISTS', key, 't:' .. out) == 1 then
    hash_add(key, 'o:' .. out, amount)
    return nil
  end
  local owed = redis.call('HGET', key, 'o:' .. out)
  if owed then
    redis.call('HDEL', key, 'o:' .. out)
    amount = big_add(owed, amount)
  end
  if amount == '0' then return nil end
  local last = tonumber(redis.call('HGET', key, 'n:' .. out) or '0')
  local seq = string.format('%d', math.max(last + 1, now_ms()))
  local transfer = seq .. '|' .. amount
  redis.call('HSET', key, 'n:' .. out, seq, 't:' .. out, transfer)
  return transfer
end

local function release_headroom(key, headroom)
  if headroom ~= '0' then hash_add(key, 'creditsInFlight', big_neg(headroom)) end
end
