-- Takes a connection slot of a username: drops expired members, refuses when `max` live ones are
-- there, else adds (or renews) this one.
-- KEYS: userConnections.
-- ARGV: member, max, now, expiresAt, ttlMs.
-- Returns 1 (taken) or 0 (refused).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1
