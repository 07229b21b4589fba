-- Removes every route of a node and the node itself. A reaper (ARGV[3] an incarnation) removes it
-- only while that incarnation is still registered and its heartbeat (Redis' clock) is at least
-- ARGV[4] ms old: a node that came back, or restarted as a new run, is kept. A node removing itself
-- passes '' (no check). A reaper's removal is recorded in `reaping` (node -> incarnation) until its
-- other steps are done: a survivor finishes them if the reaper dies.
-- Its routes are one set, unlinked: Redis frees it off its main thread, so the script takes the same
-- short time for a node with 200,000 routes as for one with none (#13.7); replicas drop the node's
-- routes on the log's op n.
-- KEYS: nodeRoutes, routeLog, nodes, nodeRuns, reaping.
-- ARGV: node, maxlen, incarnation or '', minimum heartbeat age (ms).
-- Returns how many routes went, or -1 (kept: the node came back or restarted).
--! include redis-now.lua
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[4], ARGV[1]) ~= ARGV[3] then return -1 end
  local seen = redis.call('ZSCORE', KEYS[3], ARGV[1])
  if seen and now - tonumber(seen) < tonumber(ARGV[4]) then return -1 end
end
local count = redis.call('SCARD', KEYS[1])
redis.call('UNLINK', KEYS[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[5], ARGV[1], ARGV[3]) end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'op', 'n', 'n', ARGV[1], 'f', '')
return count
