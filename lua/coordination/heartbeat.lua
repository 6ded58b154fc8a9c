-- heartbeat: one worker process tells the farm it is alive (plain EVAL
-- script, not part of the packet Functions library).
--
-- KEYS[1] {prefix}{farm}:worker:<hostId>/<shard>
-- KEYS[2] {prefix}{farm}:workers (set of worker ids, <hostId>/<shard>, of every host)
-- ARGV[1] 'beat' or 'stop'          ARGV[2] worker id, <hostId>/<shard>
-- ARGV[3] boot id                   ARGV[4] value (JSON naming bootId), beat only
-- ARGV[5] TTL (ms), beat only
--
-- Both keys carry the {farm} hash tag: one slot, on Redis Cluster too.
--
-- beat: writes the value with the TTL and adds the worker id to the set. Returns
--   the boot id the key named before ('' if none, or unreadable).
-- stop: deletes the key if it still names ARGV[3]. Returns 1 if it did, else 0.

local previous = ''
local old = redis.call('GET', KEYS[1])
if old then
  local ok, decoded = pcall(cjson.decode, old)
  if ok and type(decoded) == 'table' and type(decoded.bootId) == 'string' then previous = decoded.bootId end
end

if ARGV[1] == 'beat' then
  redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
  redis.call('SADD', KEYS[2], ARGV[2])
  return previous
elseif ARGV[1] == 'stop' then
  if previous == ARGV[3] then
    redis.call('DEL', KEYS[1])
    return 1
  end
  return 0
end
return redis.error_reply('ERR unknown heartbeat operation ' .. tostring(ARGV[1]))
