-- KEYS[1] routes hash; ARGV: JSON {prefix: [accounts]} of the config, channel.
local want = cjson.decode(ARGV[1])
local changed = false
local all = redis.call('HGETALL', KEYS[1])
local seen = {}
for i = 1, #all, 2 do
  local prefix = all[i]
  local t = cjson.decode(all[i + 1])
  local dirty = false
  local keep = {}
  if want[prefix] then for _, a in ipairs(want[prefix]) do keep[a] = true end end
  for account, info in pairs(t) do
    if info.addedBy == 'config' and not keep[account] then
      t[account] = nil
      dirty = true
    end
  end
  for account in pairs(keep) do
    if t[account] == nil or t[account].source ~= 'static' then
      t[account] = { source = 'static', addedBy = 'config' }
      dirty = true
    end
  end
  seen[prefix] = true
  if dirty then
    changed = true
    write_prefix(KEYS[1], prefix, t)
  end
end
for prefix, accounts in pairs(want) do
  if not seen[prefix] and #accounts > 0 then
    local t = {}
    for _, a in ipairs(accounts) do t[a] = { source = 'static', addedBy = 'config' } end
    redis.call('HSET', KEYS[1], prefix, cjson.encode(t))
    changed = true
  end
end
if changed then redis.call('SPUBLISH', ARGV[2], '*') end
return changed and 1 or 0
