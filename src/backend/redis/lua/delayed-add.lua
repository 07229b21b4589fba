-- Stores a delayed message ($delayed/<seconds>/<topic>) to be published `delay` ms from now on Redis'
-- clock, unless `max` are stored already (due, being published or waiting).
-- KEYS: delayed (ZSET id -> due ms), delayedMessages (HASH id -> encoded message), delayedFiring (ZSET id -> lease end ms).
-- ARGV: id, encoded message, delay (ms), max.
-- Returns 1 (stored) or 0 (full).
--! include redis-now.lua
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
