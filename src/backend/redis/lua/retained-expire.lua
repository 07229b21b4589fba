-- Deletes an expired retained message unless it was replaced meanwhile, logged for the replicas.
-- KEYS: retained, retainedLog, retainedExpiry.
-- ARGV: topic, encoded (the message found expired), maxlen.
-- Returns 1 (deleted) or 0 (replaced meanwhile).
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
  return 1
end
return 0
