-- fulfill: the packet succeeded. Credit the outgoing account, release its
-- headroom, and drop the hotSet entry, which makes the incoming debit final.
--
-- KEYS[1] hotSet hash   KEYS[2] outgoing account
-- ARGV[1] hotSet field  ARGV[2] outgoing account id (checked against the entry)
--
-- Returns 'OK', or 'GONE' when the entry was already resolved (then nothing
-- changes: a packet is settled at most once).

local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 'GONE' end
local e = entry_parse(value)
if e.outAccount ~= ARGV[2] then
  return redis.error_reply('ERR hotSet entry ' .. ARGV[1] .. ' belongs to ' .. e.outAccount)
end

hash_add(KEYS[2], 'cold', e.outAmount)
release_headroom(KEYS[2], e.headroom)

redis.call('HDEL', KEYS[1], ARGV[1])
return 'OK'
