-- lease: a key held by one holder at a time, with a TTL that only its holder
-- can extend or drop (plain EVAL script, not part of the packet Functions
-- library). Redis 7.0 has no compare-and-set command, hence the script.
--
-- KEYS[1] the lease key
-- ARGV[1] 'acquire' or 'release'   ARGV[2] the candidate (a boot id)
-- ARGV[3] TTL (ms), acquire only
--
-- acquire: takes the lease if nobody holds it, extends it if ARGV[2] holds it.
-- release: deletes it if ARGV[2] holds it.
-- Returns the holder after the call ('' for nobody).

local holder = redis.call('GET', KEYS[1])
if ARGV[1] == 'acquire' then
  if not holder then
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    return ARGV[2]
  end
  if holder == ARGV[2] then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
  return holder
elseif ARGV[1] == 'release' then
  if holder == ARGV[2] then
    redis.call('DEL', KEYS[1])
    return ''
  end
  return holder or ''
end
return redis.error_reply('ERR unknown lease operation ' .. tostring(ARGV[1]))
