-- Settlement trigger, step 2 of 3, in the farm's slot: appends a settlement
-- request that step 1 recorded in its account's slot
-- (lua/accounts/settlement.lua) to the farm-wide stream, once per request id
-- however many times it is relayed (every worker that finds the request
-- unrelayed relays it, and a retry after a lost reply relays it again).
--
-- KEYS[1] settlements stream   KEYS[2] relayed request ids (sorted set, score:
--   the ms of their stream entry)
-- ARGV[1] request id   ARGV[2] account   ARGV[3] amount   ARGV[4] balance
-- ARGV[5] threshold    ARGV[6] settleTo  ARGV[7] requested at (ms)
--
-- Returns the new entry id, or false when the request was appended before.
-- The set keeps the newest RELAYED_KEPT ids, twice the stream's length: a
-- request is appended twice only if step 3 (HDEL from its account's unrelayed
-- requests) failed to land while that many others were relayed.
local STREAM_LENGTH = 100000
local RELAYED_KEPT = 200000

if redis.call('ZSCORE', KEYS[2], ARGV[1]) then return false end
local entry = redis.call('XADD', KEYS[1], 'MAXLEN', '~', STREAM_LENGTH, '*',
  'id', ARGV[1], 'account', ARGV[2], 'amount', ARGV[3], 'balance', ARGV[4],
  'threshold', ARGV[5], 'settleTo', ARGV[6], 'requestedAt', ARGV[7])
redis.call('ZADD', KEYS[2], string.match(entry, '^(%d+)'), ARGV[1])
if redis.call('ZCARD', KEYS[2]) > RELAYED_KEPT then
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -RELAYED_KEPT - 1)
end
return entry
