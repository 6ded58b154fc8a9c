-- KEYS[1] routes hash; ARGV: prefix, account ('' with no info: every static
-- candidate), info JSON ('' to remove), channel. Returns how many candidates
-- were added or removed (a replaced one counts 0).
local current = redis.call('HGET', KEYS[1], ARGV[1])
local t = {}
if current then t = cjson.decode(current) end
local changed = 0
if ARGV[3] ~= '' then
  if t[ARGV[2]] == nil then changed = 1 end
  t[ARGV[2]] = cjson.decode(ARGV[3])
elseif ARGV[2] ~= '' then
  if t[ARGV[2]] ~= nil then changed = 1 end
  t[ARGV[2]] = nil
else
  for account, info in pairs(t) do
    if info.source == 'static' then
      t[account] = nil
      changed = changed + 1
    end
  end
end
write_prefix(KEYS[1], ARGV[1], t)
redis.call('SPUBLISH', ARGV[4], ARGV[1])
return changed
