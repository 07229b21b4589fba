-- Removes every route of a node and the node itself. A reaper (ARGV[3] an incarnation) removes it
-- only while that incarnation is still registered and its heartbeat (Redis' clock) is at least
-- ARGV[4] ms old: a node that came back, or restarted as a new run, is kept. A node removing itself
-- passes '' (no check). A reaper's removal is recorded in `reaping` (node -> incarnation) until its
-- other steps are done: a survivor finishes them if the reaper dies.
-- KEYS: routes, nodeRoutes, routeLog, nodes, nodeRuns, reaping.
-- ARGV: node, maxlen, incarnation or '', minimum heartbeat age (ms).
-- Returns how many routes went, or -1 (kept: the node came back or restarted).
--! include redis-now.lua
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[3] then return -1 end
  local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if seen and now - tonumber(seen) < tonumber(ARGV[4]) then return -1 end
end
local filters = redis.call('SMEMBERS', KEYS[2])
for _, f in ipairs(filters) do
  redis.call('HDEL', KEYS[1], ARGV[1] .. '\n' .. f)
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[6], ARGV[1], ARGV[3]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', 'n', 'n', ARGV[1], 'f', '')
return #filters
