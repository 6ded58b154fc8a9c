-- Settlement backstop, in the farm's slot: a worker is about to check an
-- account's settlement trigger (step 1, lua/accounts/settlement.lua), so the
-- account may soon hold a request that only this worker knows to relay. The
-- account goes into the set of recently checked accounts with Redis' time
-- (GT: a score only moves forward), and the leader relays what the account
-- left once that time is old enough (settle-touched.lua).
--
-- KEYS[1] recently checked accounts (sorted set: account id → ms)
-- ARGV[1] account id
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', now, ARGV[1])
return now
