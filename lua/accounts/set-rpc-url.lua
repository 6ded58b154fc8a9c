-- Sets (or with '' clears) a live account's own JSON-RPC URL, then tells every worker.
--
-- KEYS[1] the account's record   KEYS[2] its RPC URL (same hash slot)
-- ARGV[1] the URL ('' = clear)   ARGV[2] change channel ('' = the caller publishes: on a
-- cluster the channel is in another slot)   ARGV[3] the change message
--
-- Returns 1, or 0 when the account has no live record (deleted meanwhile):
-- a URL is never left behind for an id nobody holds.
local record = redis.call('GET', KEYS[1])
if not record or string.find(record, '"deleted":true', 1, true) then return 0 end
if ARGV[1] == '' then
  redis.call('DEL', KEYS[2])
else
  redis.call('SET', KEYS[2], ARGV[1])
end
if ARGV[2] ~= '' then redis.call('SPUBLISH', ARGV[2], ARGV[3]) end
return 1
