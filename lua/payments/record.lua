-- record: one entry of an account's payment history, which is bounded: the
-- oldest entries beyond the limit are dropped with their data.
--
-- KEYS[1] the account's history (sorted set: entry id -> start, ms x 1000 + a tiebreak)
-- KEYS[2] the entries' data (hash: entry id -> JSON)
-- KEYS[3] the account's payment events (sharded channel): each entry as stored
-- ARGV[1] 'put' (an outgoing payment, written whole as it changes) or
--         'credit' (a fulfilled packet of an incoming payment: its amount added)
-- ARGV[2] entry id   ARGV[3] score   ARGV[4] at most this many entries
-- put:    ARGV[5] the entry (JSON)
-- credit: ARGV[5] amount (decimal string)   ARGV[6] at (ISO time)
--         ARGV[7] the entry to start with, when there is none (JSON)
--         ARGV[8] the packet's STREAM receipt ('' for none)  ARGV[9] its total:
--         kept unless the entry has one of a higher total (packets of one
--         connection may settle out of order)
--
-- Returns the entry as stored (JSON), which is also published on KEYS[3].

local id, score, max = ARGV[2], ARGV[3], tonumber(ARGV[4])
local entry
if ARGV[1] == 'put' then
  entry = ARGV[5]
else
  local stored = redis.call('HGET', KEYS[2], id)
  local e
  if stored then
    e = cjson.decode(stored)
    e.amount = big_add(e.amount, ARGV[5])
    e.packets = e.packets + 1
  else
    e = cjson.decode(ARGV[7])
    e.amount = ARGV[5]
    e.packets = 1
  end
  e.lastAt = ARGV[6]
  if ARGV[8] ~= '' and (e.receiptTotal == nil or big_cmp(ARGV[9], e.receiptTotal) >= 0) then
    e.receipt = ARGV[8]
    e.receiptTotal = ARGV[9]
  end
  entry = cjson.encode(e)
end
redis.call('HSET', KEYS[2], id, entry)
redis.call('ZADD', KEYS[1], 'NX', score, id)

local over = redis.call('ZCARD', KEYS[1]) - max
if over > 0 then
  local dropped = redis.call('ZRANGE', KEYS[1], 0, over - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1)
  redis.call('HDEL', KEYS[2], unpack(dropped))
end
redis.call('SPUBLISH', KEYS[3], entry)
return entry
