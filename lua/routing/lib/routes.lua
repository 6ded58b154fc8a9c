-- Shared by the route scripts: write a prefix's candidates back (none: delete
-- the field), drop a peer's learned candidate, and publish the changed
-- prefixes (all as '*' past a maximum).
local function write_prefix(key, prefix, t)
  if next(t) == nil then redis.call('HDEL', key, prefix) else redis.call('HSET', key, prefix, cjson.encode(t)) end
end
-- Removes `peer`'s learned candidate of `prefix` (with `now`: only once it has
-- expired). A static candidate is never touched. True when something changed.
local function drop_learned(key, prefix, peer, now)
  local current = redis.call('HGET', key, prefix)
  if not current then return false end
  local t = cjson.decode(current)
  local c = t[peer]
  if c == nil or c.source ~= 'learned' then return false end
  if now ~= nil and (tonumber(c.expiresAtMs) or 0) > now then return false end
  t[peer] = nil
  write_prefix(key, prefix, t)
  return true
end
local function publish(channel, changed, max)
  if #changed == 0 then return end
  if #changed > max then redis.call('SPUBLISH', channel, '*') return end
  for _, p in ipairs(changed) do redis.call('SPUBLISH', channel, p) end
end
