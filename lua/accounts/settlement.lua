-- Settlement trigger, step 1 of 3, shared by the scripts that credit an
-- account (adjust.lua, settle-check.lua). Every key here is in the account's
-- hash slot: the account hash and its requests not yet relayed.
--
-- An account with a settleThreshold has at most one open settlement request,
-- named by its `settlePending` field. A check records a request when the
-- balance is at or above the threshold and none is open: a new request id
-- `<account>:<ms>-<seq>` (Redis' clock and the account's counter `settleSeq`,
-- so an id is never given twice, even by a Redis that lost its data and
-- counts again from 1), `settlePending` set to it, and the request in the
-- account's hash of unrelayed requests, `{acct:<id>}:settle`:
-- id → `<seq>|<amount>|<balance>|<threshold>|<settleTo>|<requestedAtMs>`, the
-- amount being what brings the balance back to settleTo. `settlePending` is
-- cleared by a withdrawal whose Idempotency-Key is that id (the settlement was
-- paid), or by a check that finds the balance back below the threshold. Each
-- check runs inside one script, so concurrent credits on any number of workers
-- record exactly one request per crossing.
--
-- The farm-wide stream is in another slot, so getting a request there is the
-- caller's (src/accounts/settlement-relay.ts): step 2 appends it to the stream
-- once per request id (lua/accounts/settle-relay.lua, the farm's slot), step 3
-- removes it from `{acct:<id>}:settle` (HDEL, the account's slot). Every
-- script that runs a check returns what that hash holds, so whichever call
-- comes next for the account relays a request that a crash left between the
-- steps; and the leader relays it for an account whose check was registered
-- in `{farm}:settlements:touched` (settle-touch.lua, settle-touched.lua).
-- The hash can hold more than one: the balance may fall below the threshold
-- and cross it again before a relay lands.

-- Returns the new request id, or false.
local function settlement_check(accountKey, requestsKey, accountId, threshold, settleTo)
  if threshold == nil or threshold == '' then return false end
  local balance = account_balance(accountKey)
  local pending = redis.call('HGET', accountKey, 'settlePending')
  if big_cmp(balance, threshold) < 0 then
    if pending then redis.call('HDEL', accountKey, 'settlePending') end
    return false
  end
  if pending then return false end
  local seq = redis.call('HINCRBY', accountKey, 'settleSeq', 1)
  local t = redis.call('TIME')
  local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
  local id = accountId .. ':' .. now .. '-' .. seq
  local amount = big_sub(balance, settleTo)
  redis.call('HSET', requestsKey, id, table.concat({ seq, amount, balance, threshold, settleTo, now }, '|'))
  redis.call('HSET', accountKey, 'settlePending', id)
  return id
end

-- The account's requests not yet relayed: { id, fields, id, fields, ... }.
local function settlement_unrelayed(requestsKey)
  return redis.call('HGETALL', requestsKey)
end
