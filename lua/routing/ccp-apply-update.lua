-- KEYS: routes, recv. ARGV: account, tableId, fromEpoch, toEpoch, holdDownMs,
-- now, routes JSON [{p, path, auth}], withdrawn JSON [prefix], channel, max
-- prefixes published one by one. Returns {result, changed prefixes}.
local peer = ARGV[1]
local tableId = ARGV[2]
local fromEpoch = tonumber(ARGV[3])
local toEpoch = tonumber(ARGV[4])
local holdDown = tonumber(ARGV[5])
local now = tonumber(ARGV[6])
local changed = {}
local state = { tableId = '', epoch = 0, expiresAtMs = 0 }
local raw = redis.call('HGET', KEYS[2], peer)
if raw then state = cjson.decode(raw) end
if state.tableId ~= tableId then
  -- a new table (the peer restarted): forget what it told us before, its full table follows
  local all = redis.call('HGETALL', KEYS[1])
  for i = 1, #all, 2 do
    local t = cjson.decode(all[i + 1])
    if t[peer] ~= nil and t[peer].source == 'learned' then
      t[peer] = nil
      write_prefix(KEYS[1], all[i], t)
      table.insert(changed, all[i])
    end
  end
  state.tableId = tableId
  state.epoch = 0
end
-- the peer's latest word: its routes stay until now + the hold-down it just gave (each route also keeps its own)
state.expiresAtMs = now + holdDown
local result = 'applied'
if fromEpoch > state.epoch then
  result = 'gap'
  state.needsControl = true
elseif toEpoch < state.epoch then
  result = 'old'
else
  for _, prefix in ipairs(cjson.decode(ARGV[8])) do
    if drop_learned(KEYS[1], prefix, peer, nil) then table.insert(changed, prefix) end
  end
  for _, route in ipairs(cjson.decode(ARGV[7])) do
    local current = redis.call('HGET', KEYS[1], route.p)
    local t = {}
    if current then t = cjson.decode(current) end
    local old = t[peer]
    if old == nil or old.source == 'learned' then
      local newPath = cjson.encode(route.path)
      if old == nil or cjson.encode(old.path or {}) ~= newPath or old.auth ~= route.auth then table.insert(changed, route.p) end
      t[peer] = { source = 'learned', path = route.path, auth = route.auth, expiresAtMs = now + holdDown }
      write_prefix(KEYS[1], route.p, t)
    end
  end
  state.epoch = toEpoch
end
redis.call('HSET', KEYS[2], peer, cjson.encode(state))
publish(ARGV[9], changed, tonumber(ARGV[10]))
return { result, #changed }
