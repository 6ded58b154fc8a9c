-- KEYS: routes, recv. ARGV: now, channel, max published one by one, JSON [[prefix, account], ...].
local now = tonumber(ARGV[1])
local changed = {}
local peerExpiry = {}
for _, pair in ipairs(cjson.decode(ARGV[4])) do
  local prefix, peer = pair[1], pair[2]
  if peerExpiry[peer] == nil then
    local raw = redis.call('HGET', KEYS[2], peer)
    peerExpiry[peer] = raw and (tonumber(cjson.decode(raw).expiresAtMs) or 0) or 0
  end
  if peerExpiry[peer] <= now and drop_learned(KEYS[1], prefix, peer, now) then
    table.insert(changed, prefix)
  end
end
publish(ARGV[2], changed, tonumber(ARGV[3]))
return #changed
