-- fulfill-outgoing: credit the next hop for a fulfilled packet, exactly once:
-- the credit and the deletion of its record are one step. Run only after
-- fulfill-incoming decided the packet.
--
-- KEYS[1] outgoing account (hash)   KEYS[2] its incoming credits (hash)
-- ARGV[1] field <inAccount>|<packetId>   ARGV[2] owner   ARGV[3] attempt
--
-- Returns 'OK', or 'GONE' when this reservation's record is not there
-- (already credited): nothing changes.

local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value then return 'GONE' end
local e = outgoing_parse(value)
if not e or e.owner ~= ARGV[2] or e.attempt ~= ARGV[3] then return 'GONE' end

hash_add(KEYS[1], 'cold', e.outAmount)
release_headroom(KEYS[1], e.headroom)
redis.call('HDEL', KEYS[2], ARGV[1])
return 'OK'
