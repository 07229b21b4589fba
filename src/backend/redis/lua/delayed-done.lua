-- Delayed messages a node published: removed from the firing set and their bodies deleted.
-- KEYS: delayedMessages, delayedFiring.
-- ARGV: ids.
-- Returns how many were still leased.
local n = 0
for _, id in ipairs(ARGV) do
  n = n + redis.call('ZREM', KEYS[2], id)
  redis.call('HDEL', KEYS[1], id)
end
return n
