-- Points a token digest at an account, unless another account holds it.
--
-- KEYS[1] the token's index key   ARGV[1] account id   ARGV[2] '1': take it over
-- (the caller checked that the holder no longer has this token)
--
-- Returns '' when the digest now points at ARGV[1], else the id of the
-- account that holds it: two accounts never share a token.
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] and ARGV[2] ~= '1' then return holder end
redis.call('SET', KEYS[1], ARGV[1])
return ''
