-- Renews (or re-adds, after another node's release of a taken-over id) this node's live connection
-- slots of a username.
-- KEYS: userConnections.
-- ARGV: expiresAt, ttlMs, members...
-- Returns 1.
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
