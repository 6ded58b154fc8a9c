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

local function entry_parse(value)
  local p = {}
  for part in string.gmatch(value .. '|', '([^|]*)|') do p[#p + 1] = part end
  if #p == 6 then table.insert(p, 2, '') end
  return {
    shard = p[1],
    owner = p[2],
    expiresAt = p[3],
    inAmount = p[4],
    outAccount = p[5],
    outAmount = p[6],
    headroom = p[7],
  }
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
  if headroom ~= '0' then
    local credits = redis.call('HGET', key, 'creditsInFlight') or '0'
    redis.call('HSET', key, 'creditsInFlight', big_sub(credits, headroom))
  end
end
