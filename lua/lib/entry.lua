-- A hotSet entry is one hash field per packet in flight:
--   field: <incomingAccountId>|<packetId>
--   value: <shard>|<owner>|<expiresAtMs>|<inAmount>|<outAccountId>|<outAmount>|<headroom>
-- shard is the worker slot whose hot balance a refund goes back to; owner is
-- the boot id of the worker process (incarnation) that reserved the packet,
-- so a restarted worker with the same shard id does not own its
-- predecessor's packets. headroom is what the prepare reserved against the
-- outgoing account's maxBalance ("0" when that account has no maxBalance).
-- Entries written before the owner was recorded have 6 parts; their owner
-- reads as '' (an incarnation that no longer runs).

local ENTRY_7 = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'
local ENTRY_6 = '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$'

local function entry_parse(value)
  local shard, owner, expiresAt, inAmount, outAccount, outAmount, headroom = string.match(value, ENTRY_7)
  if not shard then
    owner = ''
    shard, expiresAt, inAmount, outAccount, outAmount, headroom = string.match(value, ENTRY_6)
  end
  return {
    shard = shard,
    owner = owner,
    expiresAt = expiresAt,
    inAmount = inAmount,
    outAccount = outAccount,
    outAmount = outAmount,
    headroom = headroom,
  }
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

local function release_headroom(key, headroom)
  if headroom ~= '0' then hash_add(key, 'creditsInFlight', big_neg(headroom)) end
end
