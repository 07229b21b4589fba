-- Stores a connection's will if it still owns the client id.
-- KEYS: owner.
-- ARGV: epoch, will, delay (seconds).
-- Returns 1 (stored) or 0 (fenced out).
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'will', ARGV[2], 'wdelay', ARGV[3])
return 1
