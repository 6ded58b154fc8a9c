-- prepare-outgoing: the packet's record at the next hop, written after the
-- incoming record was (lua/lib/entry.lua): it is what a fulfill credits,
-- exactly once, and it reserves headroom so that a later fulfill can never
-- push the next hop above its maxBalance.
--
-- KEYS[1] outgoing account (hash)   KEYS[2] its incoming credits (hash)
-- ARGV[1] field <inAccount>|<packetId>
-- ARGV[2] owner   ARGV[3] attempt   ARGV[4] expiresAt (ms)
-- ARGV[5] outgoing amount           ARGV[6] outgoing maxBalance ('' = no limit)
-- ARGV[7] '1': only check, write nothing (a chain checks both sides before
--   it writes either: a refused prepare then changes nothing at all)
-- ARGV[8] '1': no expiry check (a chain on one Redis: its two records are
--   written together, and the sweeper's refund of both is one call too)
--
-- Returns 'OK', 'DUPLICATE' (a record of an earlier reservation of this
-- packet id is still waiting for its credit), 'EXCEEDS_MAX_BALANCE', or
-- 'EXPIRED': Redis' clock is past expiresAt. The sweeper resolves a dead
-- owner's records only after their expiry, so a record written late (by a
-- worker taken for dead) could appear after it refunded the incoming side:
-- none is written then. A refused call changes nothing.

local field, owner, attempt, expiresAt = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local outAmount, maxBalance = ARGV[5], ARGV[6]

if ARGV[8] ~= '1' and now_ms() >= tonumber(expiresAt) then return 'EXPIRED' end
if ARGV[7] ~= '1' and (maxBalance == '' or outAmount == '0') then
  -- no headroom to check or hold: the write is the duplicate check
  if redis.call('HSETNX', KEYS[2], field, owner .. '|' .. attempt .. '|' .. expiresAt .. '|' .. outAmount .. '|0') == 0 then
    return 'DUPLICATE'
  end
  return 'OK'
end
if redis.call('HEXISTS', KEYS[2], field) == 1 then return 'DUPLICATE' end

local headroom = '0'
if maxBalance ~= '' and outAmount ~= '0' then
  local balance, credits = account_balance(KEYS[1])
  if big_cmp(big_add(big_add(balance, credits), outAmount), maxBalance) > 0 then
    return 'EXCEEDS_MAX_BALANCE'
  end
  if ARGV[7] == '1' then return 'OK' end
  headroom = outAmount
  redis.call('HSET', KEYS[1], 'creditsInFlight', big_add(credits, outAmount))
end
if ARGV[7] == '1' then return 'OK' end

redis.call('HSET', KEYS[2], field, owner .. '|' .. attempt .. '|' .. expiresAt .. '|' .. outAmount .. '|' .. headroom)
return 'OK'
