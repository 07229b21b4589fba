-- Adds a node's count to a username's message window.
-- KEYS: userMessages.
-- ARGV: delta, ttlMs.
-- Returns the cluster total.
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
