-- Cancels a delayed message that is still scheduled (not one being published).
-- KEYS: delayed, delayedMessages.
-- ARGV: id.
-- Returns 1 (cancelled) or 0.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
