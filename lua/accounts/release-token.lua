-- Drops a token digest's index entry if it still points at the account.
--
-- KEYS[1] the token's index key   ARGV[1] account id
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end
return 0
