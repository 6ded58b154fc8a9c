-- reject-incoming: the packet failed or timed out. Refunds the sender's
-- reservation to the shard that took it and deletes the incoming record.
-- Run after reject-outgoing (or when no outgoing record was ever written).
--
-- KEYS[1] incoming account (hash)   KEYS[2] its in-flight records (hash)
-- ARGV[1] packet id   ARGV[2] owner   ARGV[3] attempt
-- ARGV[4] not before (ms, Redis' clock; '' for none), as in reject-outgoing
--
-- Returns 'OK', 'GONE' (no record of this reservation: settled already),
-- or 'EARLY' (nothing changes).

if ARGV[4] ~= '' and now_ms() < tonumber(ARGV[4]) then return 'EARLY' end
local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value then return 'GONE' end
local e = incoming_parse(value)
if not e or e.owner ~= ARGV[2] or e.attempt ~= ARGV[3] then return 'GONE' end

hash_add(KEYS[1], 'hot:' .. e.shard, e.inAmount)
redis.call('HDEL', KEYS[2], ARGV[1])
return 'OK'
