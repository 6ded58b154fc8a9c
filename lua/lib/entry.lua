-- A hotSet entry is one hash field per packet in flight:
--   field: <incomingAccountId>|<packetId>
--   value: <shard>|<expiresAtMs>|<inAmount>|<outAccountId>|<outAmount>|<headroom>
-- headroom is what the prepare reserved against the outgoing account's
-- maxBalance ("0" when that account has no maxBalance).

local function entry_parse(value)
  local p = {}
  for part in string.gmatch(value, '([^|]*)|?') do
    p[#p + 1] = part
    if #p == 6 then break end
  end
  return {
    shard = p[1],
    expiresAt = p[2],
    inAmount = p[3],
    outAccount = p[4],
    outAmount = p[5],
    headroom = p[6],
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
