-- reject: the packet failed or timed out. Refund the incoming reservation to
-- the shard that took it, release the outgoing headroom, drop the entry.
--
-- KEYS[1] hotSet hash
-- KEYS[2] incoming account  KEYS[3] outgoing account
-- ARGV[1] hotSet field      ARGV[2] outgoing account id (checked against the entry)
-- ARGV[3], ARGV[4] guard (ARGV[4] '' for none). Refunds made outside the packet's
--   own flow (the sweeper, a worker's audit of its orphans) pass the owner
--   boot id and expiresAt (ms) of the entry they examined: another entry
--   under the same field (that packet was settled and its id used again)
--   counts as gone.
--
-- Returns 'OK', or 'GONE' when the entry was already resolved.

local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 'GONE' end
local e = entry_parse(value)
if ARGV[4] and ARGV[4] ~= '' and (e.owner ~= ARGV[3] or e.expiresAt ~= ARGV[4]) then return 'GONE' end
if e.outAccount ~= ARGV[2] then
  return redis.error_reply('ERR hotSet entry ' .. ARGV[1] .. ' belongs to ' .. e.outAccount)
end

hash_add(KEYS[2], 'hot:' .. e.shard, e.inAmount)
release_headroom(KEYS[3], e.headroom)

redis.call('HDEL', KEYS[1], ARGV[1])
return 'OK'
