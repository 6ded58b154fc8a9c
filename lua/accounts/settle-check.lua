-- After a fulfill credited an account with a settleThreshold: record a
-- settlement request if the balance crossed it (lua/accounts/settlement.lua).
--
-- KEYS[1] account hash   KEYS[2] settlements stream
-- ARGV[1] account id     ARGV[2] settleThreshold   ARGV[3] settleTo
--
-- Returns the new entry id, or false.
return settlement_check(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
