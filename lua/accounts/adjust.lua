-- A deposit or a withdrawal: moves an account's balance by an amount the
-- operator gives, exactly once per idempotency key.
--
-- KEYS[1] account hash   KEYS[2] the idempotency key's record (string)
-- KEYS[3] the account's unrelayed settlement requests (hash): every key is in
-- the account's slot
-- ARGV[1] 'deposit' | 'withdrawal'   ARGV[2] amount (> 0)
-- ARGV[3] minBalance ('' = no limit; withdrawals only)
-- ARGV[4] record TTL (ms)   ARGV[5] account id
-- ARGV[6] settleThreshold ('' = none)   ARGV[7] settleTo
-- ARGV[8] the idempotency key as the caller gave it
--
-- Returns { status, balance, settlementId or '', unrelayed } with status
-- 'APPLIED', 'REPLAYED' (the key was used before for the same operation:
-- nothing changes, the balance is the one it produced), 'CONFLICT' (the key
-- was used for another operation or amount) or 'INSUFFICIENT_BALANCE'.
-- settlementId: the settlement request this change recorded (step 1 of 3,
-- lua/accounts/settlement.lua); unrelayed: the account's requests not yet
-- relayed to the farm's stream, { id, fields, ... }, whatever the status:
-- the caller relays them (steps 2 and 3), a retried request included.
local kind, amount, minBalance = ARGV[1], ARGV[2], ARGV[3]
local fingerprint = kind .. '|' .. amount

local seen = redis.call('GET', KEYS[2])
if seen then
  if string.sub(seen, 1, string.len(fingerprint) + 1) ~= fingerprint .. '|' then
    return { 'CONFLICT', '', '', settlement_unrelayed(KEYS[3]) }
  end
  return { 'REPLAYED', string.sub(seen, string.len(fingerprint) + 2), '', settlement_unrelayed(KEYS[3]) }
end

-- Every hot (shard-leased) balance goes back to cold first: the invariant
-- cold >= minBalance then holds after a withdrawal as after a prepare.
local balance, _, all = account_balance(KEYS[1])
local next = kind == 'deposit' and big_add(balance, amount) or big_sub(balance, amount)
if kind == 'withdrawal' and minBalance ~= '' and big_cmp(next, minBalance) < 0 then
  return { 'INSUFFICIENT_BALANCE', balance, '', settlement_unrelayed(KEYS[3]) }
end
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, 1, 4) == 'hot:' and all[i + 1] ~= '0' then redis.call('HSET', KEYS[1], f, '0') end
end
redis.call('HSET', KEYS[1], 'cold', next)
redis.call('SET', KEYS[2], fingerprint .. '|' .. next, 'PX', ARGV[4])

local settlementId = ''
if kind == 'withdrawal' then
  -- a withdrawal keyed by the open settlement request's id is that settlement, paid
  local pending = redis.call('HGET', KEYS[1], 'settlePending')
  if pending and pending == ARGV[8] then redis.call('HDEL', KEYS[1], 'settlePending') end
end
local id = settlement_check(KEYS[1], KEYS[3], ARGV[5], ARGV[6], ARGV[7])
if id then settlementId = id end
return { 'APPLIED', next, settlementId, settlement_unrelayed(KEYS[3]) }
