-- Adds a route: this node (ARGV node) has a subscription matching filterKey. Logged to the route log
-- in the same step, so no replica misses it.
-- KEYS: routes, nodeRoutes (this node's), routeLog.
-- ARGV: node, filterKey, maxlen (the log's cap).
-- Returns the route-log entry every node must have applied for the route to be in its replica: the one
-- added, or (the route was there already) the log's last.
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('HSET', KEYS[1], ARGV[1] .. '\n' .. ARGV[2], '1') == 1 then
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'a', 'n', ARGV[1], 'f', ARGV[2])
end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]
