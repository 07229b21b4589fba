-- Adds a route: this node (ARGV node) has a subscription matching filterKey. Logged to the route log
-- in the same step, so no replica misses it. The node's set of filterKeys is the route table's truth
-- (snapshots read every registered node's set). The run writing it is recorded first, so a reaper
-- of an earlier run of this node leaves the set alone (route-node-drop.lua).
-- KEYS: nodeRoutes (this node's), routeLog, routeRuns (all of one partition).
-- ARGV: node, filterKey, maxlen (the log's cap), run (this node's incarnation).
-- Returns the route-log entry every node must have applied for the route to be in its replica: the one
-- added, or (the route was there already) the log's last.
if redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[4] then redis.call('HSET', KEYS[3], ARGV[1], ARGV[4]) end
if redis.call('SADD', KEYS[1], ARGV[2]) == 1 then
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'a', 'n', ARGV[1], 'f', ARGV[2])
end
local last = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]
