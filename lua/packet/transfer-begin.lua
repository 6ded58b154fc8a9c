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
-- 'NONE' when nothing is owed. A fulfill begins its pair's transfer itself
-- when none is in progress (owe_credit, lua/lib/entry.lua): this one is for
-- what was owed while another ran, and for whoever finishes a transfer.

local pending = redis.call('HGET', KEYS[1], 't:' .. ARGV[1])
if pending then return pending end
return owe_credit(KEYS[1], ARGV[1], '0') or 'NONE'
