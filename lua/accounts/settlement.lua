-- Settlement trigger, shared by the scripts that credit an account.
--
-- An account with a settleThreshold has at most one open settlement request,
-- named by its `settlePending` field (the stream entry id). A request is
-- recorded when the balance is at or above the threshold and none is open:
-- one XADD to the settlements stream for the amount that brings the balance
-- back to settleTo. The field is cleared by a withdrawal whose
-- Idempotency-Key is that entry id (the settlement was paid), or by a check
-- that finds the balance back below the threshold. Every check runs inside
-- one script, so concurrent credits on any number of workers record exactly
-- one request per crossing.
--
-- Returns the new entry id, or false.
local function settlement_check(accountKey, streamKey, accountId, threshold, settleTo)
  if threshold == nil or threshold == '' then return false end
  local balance = account_balance(accountKey)
  local pending = redis.call('HGET', accountKey, 'settlePending')
  if big_cmp(balance, threshold) < 0 then
    if pending then redis.call('HDEL', accountKey, 'settlePending') end
    return false
  end
  if pending then return false end
  local amount = big_sub(balance, settleTo)
  local id = redis.call('XADD', streamKey, 'MAXLEN', '~', '100000', '*',
    'account', accountId, 'amount', amount, 'balance', balance, 'threshold', threshold, 'settleTo', settleTo)
  redis.call('HSET', accountKey, 'settlePending', id)
  return id
end
