-- prepare-incoming: claim the packet id for the sender and reserve its
-- amount, all or nothing. The first step of every packet: its record here is
-- the packet's decision (lua/lib/entry.lua).
--
-- KEYS[1] incoming account (hash)   KEYS[2] its in-flight records (hash)
-- KEYS[3] its sending-rate window (hash: second, packets, amount)
-- ARGV[1] packet id                 ARGV[2] owner shard
-- ARGV[3] owner: boot id of the worker process (no '|')
-- ARGV[4] attempt (unique per owner) ARGV[5] expiresAt (ms)
-- ARGV[6] incoming amount           ARGV[7] outgoing account id
-- ARGV[8] outgoing amount           ARGV[9] incoming minBalance ('' = no limit)
-- ARGV[10] parallelism P of the incoming account (1 or more)
-- ARGV[11] maxInFlight   ARGV[12] maxPacketsPerSecond   ARGV[13] maxAmountPerSecond
--   ('' = no limit): farm-wide, since every worker's packets of the account
--   pass here; a second is Redis' own, a fixed window.
--
-- Returns 'OK', 'DUPLICATE', 'TOO_MANY_IN_FLIGHT', 'RATE_LIMITED',
-- 'THROUGHPUT_EXCEEDED' or 'INSUFFICIENT_BALANCE'. The record's write comes
-- first, as the duplicate check (HSETNX); every other check runs before any
-- other write, and a refusal deletes the record again: a refused prepare
-- changes nothing (only granted packets count against the limits).

local packetId, shard, owner, attempt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expiresAt, inAmount, outAccount, outAmount = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local minBalance = ARGV[9]
local parallelism = tonumber(ARGV[10]) or 1

local record = shard .. '|' .. owner .. '|' .. attempt .. '|' .. expiresAt .. '|' .. inAmount .. '|' .. outAccount .. '|' .. outAmount
if redis.call('HSETNX', KEYS[2], packetId, record) == 0 then return 'DUPLICATE' end
local function refuse(reason)
  redis.call('HDEL', KEYS[2], packetId)
  return reason
end

local maxInFlight, maxPackets, maxAmount = ARGV[11], ARGV[12], ARGV[13]
-- the count includes this packet's own record, written above
if maxInFlight ~= '' and redis.call('HLEN', KEYS[2]) > tonumber(maxInFlight) then return refuse('TOO_MANY_IN_FLIGHT') end
local window, windowPackets, windowAmount = nil, 0, '0'
if maxPackets ~= '' or maxAmount ~= '' then
  -- the second of Redis' clock, read once per call (lua/lib/entry.lua)
  window = string.format('%d', math.floor(now_ms() / 1000))
  local w = redis.call('HMGET', KEYS[3], 's', 'n', 'a')
  if w[1] == window then windowPackets, windowAmount = tonumber(w[2]) or 0, w[3] or '0' end
  if maxPackets ~= '' and windowPackets + 1 > tonumber(maxPackets) then return refuse('RATE_LIMITED') end
  if maxAmount ~= '' and big_cmp(big_add(windowAmount, inAmount), maxAmount) > 0 then return refuse('THROUGHPUT_EXCEEDED') end
end

-- Incoming side. Invariants: every hot balance >= 0 and cold >= minBalance,
-- so cold + sum(hot) >= minBalance whatever the order of prepares on any
-- number of shards. The shard spends its own hot balance first, then cold.
-- When it must draw on cold, it also moves a lease of up to (P - 1) x amount
-- into its hot balance, so its next P - 1 such packets need no cold at all.
local hotField = 'hot:' .. shard
local cold, hot, takeHot, takeCold, lease, reclaim = nil, nil, '0', '0', '0', nil
if inAmount ~= '0' then
  local v = redis.call('HMGET', KEYS[1], 'cold', hotField)
  cold, hot = v[1] or '0', v[2] or '0'
  takeHot = big_min(hot, inAmount)
  takeCold = big_sub(inAmount, takeHot)
  if takeCold ~= '0' and minBalance ~= '' then
    -- cold after this packet must stay >= minBalance. Compared, not
    -- subtracted: cold and amounts are small, minBalance often is not.
    local after = big_sub(cold, takeCold)
    if big_cmp(after, minBalance) < 0 then
      -- Not enough on this shard: take back what other shards hold idle
      -- before refusing, so the refusal is exact for the whole account.
      local _, _, all = account_balance(KEYS[1])
      local reclaimed = '0'
      reclaim = {}
      for i = 1, #all, 2 do
        local f = all[i]
        if string.sub(f, 1, 4) == 'hot:' and f ~= hotField and all[i + 1] ~= '0' then
          reclaimed = big_add(reclaimed, all[i + 1])
          reclaim[#reclaim + 1] = f
        end
      end
      after = big_add(after, reclaimed)
      if big_cmp(after, minBalance) < 0 then
        return refuse('INSUFFICIENT_BALANCE')
      end
      cold = big_add(cold, reclaimed)
    end
    if parallelism > 1 then
      -- lease = min((P - 1) x amount, after - minBalance): the lease never
      -- takes cold below minBalance
      local wanted = inAmount
      for _ = 3, parallelism do wanted = big_add(wanted, inAmount) end
      if big_cmp(big_sub(after, wanted), minBalance) >= 0 then
        lease = wanted
      else
        lease = big_sub(after, minBalance)
      end
    end
  end
end

if inAmount ~= '0' then
  if reclaim then
    for _, f in ipairs(reclaim) do redis.call('HSET', KEYS[1], f, '0') end
  end
  if takeCold ~= '0' then
    redis.call('HSET', KEYS[1], 'cold', big_sub(big_sub(cold, takeCold), lease),
      hotField, big_add(big_sub(hot, takeHot), lease))
  else
    -- HINCRBY: Redis' own integer arithmetic, exact; hash_add falls back to decimal strings past 64 bits
    hash_add(KEYS[1], hotField, big_neg(takeHot))
  end
end

if window then
  redis.call('HSET', KEYS[3], 's', window, 'n', windowPackets + 1, 'a', big_add(windowAmount, inAmount))
  redis.call('PEXPIRE', KEYS[3], 2000)
end
return 'OK'
