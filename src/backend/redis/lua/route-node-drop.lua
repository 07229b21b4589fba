-- Drops every route a node has in one partition. A reaper passes the run (incarnation) it judged
-- dead: the routes go only if no later run of the node wrote routes here since (route-add.lua
-- records the run), so a node that came back and routed again keeps them. A node dropping its own
-- passes '' (no check). The set is unlinked: Redis frees it off its main thread, so the script takes
-- the same short time for 200,000 routes as for none (#13.7); replicas drop the node's routes of this
-- partition on the log's op n.
-- KEYS: nodeRoutes, routeLog, routeRuns (of one partition).
-- ARGV: node, maxlen, run or ''.
-- Returns how many routes went, or -1 (kept: a later run of the node owns them).
local run = redis.call('HGET', KEYS[3], ARGV[1])
if ARGV[3] ~= '' and run and run ~= ARGV[3] then return -1 end
local count = redis.call('SCARD', KEYS[1])
redis.call('HDEL', KEYS[3], ARGV[1])
if count == 0 then return 0 end
redis.call('UNLINK', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'op', 'n', 'n', ARGV[1], 'f', '')
return count
