-- fulfill: the packet succeeded. Credit the outgoing account, release its
-- headroom, and drop the hotSet entry, which makes the incoming debit final.
--
-- KEYS[1] hotSet hash   KEYS[2] hotSet expiry index   KEYS[3] outgoing account
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

local cold = redis.call('HGET', KEYS[3], 'cold') or '0'
redis.call('HSET', KEYS[3], 'cold', big_add(cold, e.outAmount))
release_headroom(KEYS[3], e.headroom)

redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 'OK'
