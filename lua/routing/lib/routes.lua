-- Shared by the route scripts: write a prefix's candidates back (none: delete
-- the field), and publish the changed prefixes (all as '*' past a maximum).
local function write_prefix(key, prefix, t)
  if next(t) == nil then redis.call('HDEL', key, prefix) else redis.call('HSET', key, prefix, cjson.encode(t)) end
end
local function publish(channel, changed, max)
  if #changed == 0 then return end
  if #changed > max then redis.call('PUBLISH', channel, '*') return end
  for _, p in ipairs(changed) do redis.call('PUBLISH', channel, p) end
end
