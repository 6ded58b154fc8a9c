-- transfer-apply: credits a transfer (transfer-begin) to the next hop, once:
-- the next hop keeps, per incoming account, the number of the last transfer
-- it applied, and a pair's transfers are applied in the order of their
-- numbers (one at a time: the next begins after this one ended).
--
-- KEYS[1] outgoing account (hash)
-- KEYS[2] its applied transfers (hash: <incoming account> -> last seq)
-- ARGV[1] incoming account id   ARGV[2] seq   ARGV[3] amount
--
-- Returns 'OK', or 'DONE' when this transfer (or a later one) was applied
-- already: nothing changes.

local last = redis.call('HGET', KEYS[2], ARGV[1])
if last and tonumber(last) >= tonumber(ARGV[2]) then return 'DONE' end
hash_add(KEYS[1], 'cold', ARGV[3])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 'OK'
