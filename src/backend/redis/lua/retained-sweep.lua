-- Removes up to ARGV[2] retained messages whose expiry time (Redis' clock) passed, whether or not
-- anyone reads them, logging each delete for the replicas. The index entry is replaced or removed in
-- the same script as its message (retained-set.lua, retained-expire.lua), so a due entry names the
-- message stored now: the compare of retained-expire.lua is the index score here, and a replaced
-- message is kept.
-- KEYS: retained, retainedLog, retainedExpiry.
-- ARGV: maxlen, batch.
-- Returns how many were due.
--! include redis-now.lua
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, topic in ipairs(due) do
  redis.call('ZREM', KEYS[3], topic)
  if redis.call('HDEL', KEYS[1], topic) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'd', 't', topic, 'm', '')
  end
end
return #due
