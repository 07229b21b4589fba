-- The node set on Redis' clock.
-- KEYS: nodes, nodeRuns.
-- ARGV: none.
-- Returns {now, node, last heartbeat, incarnation, ...}.
--! include redis-now.lua
local out = {now}
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  table.insert(out, all[i])
  table.insert(out, all[i + 1])
  table.insert(out, redis.call('HGET', KEYS[2], all[i]) or '')
end
return out
