-- transfer-begin: the first of a transfer's three steps, which move what an
-- incoming account owes a next hop (fulfill-incoming's o:<out>) into the
-- next hop's balance, exactly once, across two slots: begin (here, the
-- incoming slot) sets the owed amount aside as one numbered transfer,
-- transfer-apply credits it in the next hop's slot unless its number was
-- applied already, and transfer-end drops it here. Anyone may run any step
-- again (the owner, another worker, the sweeper): a pair has at most one
-- transfer in progress, and begin hands it back until it is ended.
--
-- KEYS[1] incoming account's owed credits (hash):
--   o:<out> owed, not yet in a transfer
--   t:<out> the transfer in progress: <seq>|<amount>
--   n:<out> the pair's last transfer number
-- ARGV[1] outgoing account id
--
-- Returns '<seq>|<amount>' (a new transfer, or the one in progress), or
-- 'NONE' when nothing is owed. Transfer numbers grow with Redis' clock (ms)
-- as well as by one, so a number reused after a failover that lost a begin
-- is never taken for one already applied (unless the clocks of the two
-- masters differ by more than the failover took).

local out = ARGV[1]
local pending = redis.call('HGET', KEYS[1], 't:' .. out)
if pending then return pending end
local owed = redis.call('HGET', KEYS[1], 'o:' .. out)
if not owed or owed == '0' then return 'NONE' end
local last = tonumber(redis.call('HGET', KEYS[1], 'n:' .. out) or '0')
local seq = math.max(last + 1, now_ms())
local transfer = string.format('%d', seq) .. '|' .. owed
redis.call('HSET', KEYS[1], 'n:' .. out, string.format('%d', seq), 't:' .. out, transfer)
redis.call('HDEL', KEYS[1], 'o:' .. out)
return transfer
