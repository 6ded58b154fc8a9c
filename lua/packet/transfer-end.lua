-- transfer-end: drops a transfer that transfer-apply has credited, so the
-- pair's next transfer can begin.
--
-- KEYS[1] incoming account's owed credits (hash, as in transfer-begin)
-- ARGV[1] outgoing account id   ARGV[2] seq
--
-- Returns 'MORE' when more is owed to the next hop than that transfer
-- moved (its next transfer is due), else 'OK', or 'GONE' when that transfer
-- was not the one in progress (ended already: nothing else changes).

local pending = redis.call('HGET', KEYS[1], 't:' .. ARGV[1])
local result = 'GONE'
if pending and string.sub(pending, 1, #ARGV[2] + 1) == ARGV[2] .. '|' then
  redis.call('HDEL', KEYS[1], 't:' .. ARGV[1])
  result = 'OK'
end
if redis.call('HEXISTS', KEYS[1], 'o:' .. ARGV[1]) == 1 then return 'MORE' end
return result
