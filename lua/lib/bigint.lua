-- Exact signed integer arithmetic on decimal strings.
--
-- Redis' Lua numbers are doubles: exact only up to 2^53, while ILP amounts are
-- UInt64 and balances may exceed that. Values below 10^15 (magnitude) take a
-- fast path on plain numbers (every sum of two such values is still exact);
-- anything larger is computed in base-10^7 limbs. Every value crossing this
-- boundary is a canonical decimal string ("0", "-12", never "+1" or "007").

local BIG_BASE = 10000000
local BIG_LIMB_DIGITS = 7

local function big_is_small(s)
  local n = #s
  if string.byte(s, 1) == 45 then n = n - 1 end -- '-'
  return n <= 15
end

local function big_from_number(x)
  if x == 0 then return '0' end
  return string.format('%.0f', x)
end

-- parse a decimal string into sign and little-endian limbs
local function big_parse(s)
  local neg = false
  if string.byte(s, 1) == 45 then
    neg = true
    s = string.sub(s, 2)
  end
  local limbs = {}
  local i = #s
  while i >= 1 do
    local j = i - BIG_LIMB_DIGITS + 1
    if j < 1 then j = 1 end
    limbs[#limbs + 1] = tonumber(string.sub(s, j, i))
    i = j - 1
  end
  while #limbs > 1 and limbs[#limbs] == 0 do limbs[#limbs] = nil end
  if #limbs == 1 and limbs[1] == 0 then neg = false end
  return neg, limbs
end

local function big_format(neg, limbs)
  local parts = { string.format('%d', limbs[#limbs]) }
  for k = #limbs - 1, 1, -1 do
    parts[#parts + 1] = string.format('%07d', limbs[k])
  end
  local s = table.concat(parts)
  if neg and s ~= '0' then s = '-' .. s end
  return s
end

local function big_cmp_mag(a, b)
  if #a ~= #b then
    if #a < #b then return -1 else return 1 end
  end
  for k = #a, 1, -1 do
    if a[k] ~= b[k] then
      if a[k] < b[k] then return -1 else return 1 end
    end
  end
  return 0
end

local function big_add_mag(a, b)
  local r, carry = {}, 0
  local n = math.max(#a, #b)
  for k = 1, n do
    local v = (a[k] or 0) + (b[k] or 0) + carry
    if v >= BIG_BASE then
      r[k] = v - BIG_BASE
      carry = 1
    else
      r[k] = v
      carry = 0
    end
  end
  if carry > 0 then r[n + 1] = carry end
  return r
end

-- a - b for |a| >= |b|
local function big_sub_mag(a, b)
  local r, borrow = {}, 0
  for k = 1, #a do
    local v = a[k] - (b[k] or 0) - borrow
    if v < 0 then
      r[k] = v + BIG_BASE
      borrow = 1
    else
      r[k] = v
      borrow = 0
    end
  end
  while #r > 1 and r[#r] == 0 do r[#r] = nil end
  return r
end

local function big_add(x, y)
  if y == '0' then return x end
  if x == '0' then return y end
  if big_is_small(x) and big_is_small(y) then
    return big_from_number(tonumber(x) + tonumber(y))
  end
  local xn, xl = big_parse(x)
  local yn, yl = big_parse(y)
  if xn == yn then return big_format(xn, big_add_mag(xl, yl)) end
  local c = big_cmp_mag(xl, yl)
  if c == 0 then return '0' end
  if c > 0 then return big_format(xn, big_sub_mag(xl, yl)) end
  return big_format(yn, big_sub_mag(yl, xl))
end

local function big_neg(x)
  if x == '0' then return x end
  if string.byte(x, 1) == 45 then return string.sub(x, 2) end
  return '-' .. x
end

local function big_sub(x, y)
  if x == y then return '0' end
  return big_add(x, big_neg(y))
end

-- -1, 0 or 1. Canonical strings compare by sign, then length, then digits:
-- no parsing, whatever their size.
local function big_cmp(x, y)
  if x == y then return 0 end
  local xneg, yneg = string.byte(x, 1) == 45, string.byte(y, 1) == 45
  if xneg ~= yneg then
    if xneg then return -1 else return 1 end
  end
  local c = 0
  if #x ~= #y then
    c = #x < #y and -1 or 1
  else
    -- same length: the first differing chunk of digits decides (plain
    -- numbers, exact below 10^15; Lua's string < depends on the locale)
    local i = xneg and 2 or 1
    while c == 0 do
      local a, b = tonumber(string.sub(x, i, i + 14)), tonumber(string.sub(y, i, i + 14))
      if a ~= b then c = a < b and -1 or 1 end
      i = i + 15
    end
  end
  if xneg then return -c end
  return c
end

local function big_min(x, y)
  if big_cmp(x, y) <= 0 then return x end
  return y
end
