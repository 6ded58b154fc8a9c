-- fulfill-incoming: the packet succeeded. Deleting the incoming record makes
-- the sender's debit final and decides the packet: its outgoing record is
-- now owed its credit (fulfill-outgoing), by the owner or, should it die, by
-- the sweeper (lua/lib/entry.lua). A packet without an outgoing record (on
-- a cluster, a next hop without a maxBalance) adds its credit to what the
-- incoming account owes the next hop instead, in the same step, and begins
-- the pair's transfer when none is in progress (owe_credit; transfer-apply
-- and transfer-end move it on).
--
-- KEYS[1] incoming account's in-flight records (hash)
-- KEYS[2] incoming account's owed credits (hash; used with ARGV[6] only)
-- ARGV[1] packet id   ARGV[2] owner   ARGV[3] attempt
-- ARGV[4] outgoing account id (checked against the record)
-- ARGV[5] '1': honour it even after the expiry (until the sweeper refunds
--   it): only where the sweeper's refund is one call (a chain on one Redis),
--   so a fulfill can never land between the refund's two steps.
-- ARGV[6] the packet has no outgoing record: '1' owe its outAmount to the
--   next hop (field o:<outAccount> of KEYS[2]), for the transfer the caller
--   has running for the pair to take; '2' the same, and begin the pair's
--   transfer when none is in progress; '' it has one
--
-- Returns 'OK' and the record as parsed (a chain credits from it when the
-- packet has no outgoing record), or 'T<seq>|<amount>' and the record when
-- it began a transfer; 'GONE' when this reservation's record is not there (already
-- settled, or refunded by the sweeper); 'EXPIRED' when Redis' clock is past
-- the packet's expiry: a fulfill that late is not honoured (the sweeper may
-- be refunding it), nothing changes and the caller rejects the packet.

local value = redis.call('HGET', KEYS[1], ARGV[1])
if not value then return 'GONE' end
local e = incoming_parse(value)
if not e or e.owner ~= ARGV[2] or e.attempt ~= ARGV[3] then return 'GONE' end
if e.outAccount ~= ARGV[4] then
  return redis.error_reply('ERR in-flight packet ' .. ARGV[1] .. ' goes to ' .. e.outAccount)
end
if ARGV[5] ~= '1' and now_ms() >= tonumber(e.expiresAt) then return 'EXPIRED' end

redis.call('HDEL', KEYS[1], ARGV[1])
if ARGV[6] == '1' then
  hash_add(KEYS[2], 'o:' .. e.outAccount, e.outAmount)
elseif ARGV[6] == '2' then
  local transfer = owe_credit(KEYS[2], e.outAccount, e.outAmount)
  if transfer then return 'T' .. transfer, e end
end
return 'OK', e
