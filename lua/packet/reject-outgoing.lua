-- reject-outgoing: the first step of a refund. Releases the next hop's
-- headroom and deletes the outgoing record, before reject-incoming refunds
-- the sender: an outgoing record without its incoming record then always
-- means a fulfilled packet (lua/lib/entry.lua).
--
-- KEYS[1] outgoing account (hash)   KEYS[2] its incoming credits (hash)
-- ARGV[1] field <inAccount>|<packetId>   ARGV[2] owner   ARGV[3] attempt
-- ARGV[4] not before (ms, Redis' clock; '' for none): the sweeper passes the
--   packet's expiry plus its clock margin, so it never races a late fulfill.
--
-- Returns 'OK', 'GONE' (no record of this reservation), or 'EARLY'
-- (Redis' clock is before ARGV[4]: nothing changes).

if ARGV[4] ~= '' and now_ms() < tonumber(ARGV[4]) then return 'EARLY' end
local value = redis.call('HGET', KEYS[2], ARGV[1])
if not value then return 'GONE' end
local e = outgoing_parse(value)
if not e or e.owner ~= ARGV[2] or e.attempt ~= ARGV[3] then return 'GONE' end

release_headroom(KEYS[1], e.headroom)
redis.call('HDEL', KEYS[2], ARGV[1])
return 'OK'
