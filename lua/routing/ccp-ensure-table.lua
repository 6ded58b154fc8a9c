-- KEYS[1] table hash; ARGV: a fresh id, a fresh secret.
redis.call('HSETNX', KEYS[1], 'id', ARGV[1])
redis.call('HSETNX', KEYS[1], 'secret', ARGV[2])
redis.call('HSETNX', KEYS[1], 'epoch', '0')
return redis.call('HGETALL', KEYS[1])
