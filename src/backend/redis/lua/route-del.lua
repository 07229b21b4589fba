-- Removes a route of this node, logged to the route log in the same step.
-- KEYS: nodeRoutes (this node's), routeLog.
-- ARGV: node, filterKey, maxlen (the log's cap).
-- Returns 1 (removed) or 0 (it was not there).
if redis.call('SREM', KEYS[1], ARGV[2]) == 1 then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 'n', ARGV[1], 'f', ARGV[2])
  return 1
end
return 0
