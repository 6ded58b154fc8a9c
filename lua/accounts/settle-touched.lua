-- Settlement backstop, in the farm's slot: the leader's side of
-- settle-touch.lua.
--
-- KEYS[1] recently checked accounts (sorted set: account id → ms)
-- ARGV[1] 'due': ARGV[2] grace (ms), ARGV[3] how many: the accounts last
--   checked more than the grace ago (by Redis' time), oldest first, as
--   { id, ms, id, ms, ... }
-- ARGV[1] 'forget': ARGV[2] account id, ARGV[3] the ms read with it: removes
--   the account unless it was checked again since (its ms moved). Returns 1
--   when removed.
if ARGV[1] == 'due' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[3]))
end
local score = redis.call('ZSCORE', KEYS[1], ARGV[2])
if score and tonumber(score) == tonumber(ARGV[3]) then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 1
end
return 0
