-- Compare-and-set of one account record, then tell every worker.
--
-- KEYS[1] accounts hash
-- ARGV[1] account id   ARGV[2] the record the caller read ('' = none)
-- ARGV[3] the new record ('' = remove the field)   ARGV[4] change channel
--
-- Returns 1, or 0 when the record is no longer the one the caller read (it
-- re-reads and decides again): two admins changing one account at once
-- cannot lose each other's change, and a config re-applied by a starting
-- worker cannot overwrite a change made in between.
local current = redis.call('HGET', KEYS[1], ARGV[1]) or ''
if current ~= ARGV[2] then return 0 end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('PUBLISH', ARGV[4], ARGV[1])
return 1
