-- After a fulfill credited an account with a settleThreshold: records a
-- settlement request if the balance crossed it (step 1 of 3,
-- lua/accounts/settlement.lua). One slot: the account's.
--
-- KEYS[1] account hash   KEYS[2] the account's unrelayed requests (hash)
-- ARGV[1] account id     ARGV[2] settleThreshold   ARGV[3] settleTo
--
-- Returns { new request id or '', the unrelayed requests (this one included)
-- as { id, fields, ... } }: the caller relays them (steps 2 and 3).
local id = settlement_check(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return { id or '', settlement_unrelayed(KEYS[2]) }
