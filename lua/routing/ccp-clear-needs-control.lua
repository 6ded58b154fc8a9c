-- KEYS[1] recv hash; ARGV[1] account.
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local s = cjson.decode(raw)
if not s.needsControl then return 0 end
s.needsControl = nil
redis.call('HSET', KEYS[1], ARGV[1], cjson.encode(s))
return 1
