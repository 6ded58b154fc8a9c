-- KEYS: table, adv, leader; ARGV: bootId, fromEpoch, toEpoch, then prefix, entry JSON pairs.
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then return 0 end
for i = 4, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[1], 'epoch', ARGV[3])
return 1
