-- Compare-and-set of one account's record, then tell every worker.
--
-- KEYS[1] the account's record   KEYS[2] its RPC URL (same hash slot)
-- ARGV[1] the record the caller read ('' = none)   ARGV[2] the new record
-- ARGV[3] '1': also clear the RPC URL (the account was deleted)
-- ARGV[4] change channel ('' = the caller publishes later: for a whole batch, or on a
--         cluster, where the channel is in another slot)
-- ARGV[5] the change message
--
-- Returns 1, or 0 when the record is no longer the one the caller read (it
-- re-reads and decides again): two admins changing one account at once
-- cannot lose each other's change, and a config re-applied by a starting
-- worker cannot overwrite a change made in between. The message goes out in
-- the same step as the write, so no worker can read the old record after it.
local current = redis.call('GET', KEYS[1]) or ''
if current ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[3] == '1' then redis.call('DEL', KEYS[2]) end
if ARGV[4] ~= '' then redis.call('SPUBLISH', ARGV[4], ARGV[5]) end
return 1
