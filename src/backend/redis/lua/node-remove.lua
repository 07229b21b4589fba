-- Removes a node from the node set. A reaper (ARGV[2] an incarnation) removes it only while that
-- incarnation is still registered and its heartbeat (Redis' clock) is at least ARGV[3] ms old: a
-- node that came back, or restarted as a new run, is kept. A node removing itself passes '' (no
-- check). A reaper's removal is recorded in `reaping` (node -> incarnation) until its other steps
-- are done (its routes first, route-node-drop.lua in each partition): a survivor finishes them if
-- the reaper dies.
-- KEYS: nodes, nodeRuns, reaping.
-- ARGV: node, incarnation or '', minimum heartbeat age (ms).
-- Returns 1 (removed) or -1 (kept: the node came back or restarted).
--! include redis-now.lua
if ARGV[2] ~= '' then
  if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return -1 end
  local seen = redis.call('ZSCORE', KEYS[1], ARGV[1])
  if seen and now - tonumber(seen) < tonumber(ARGV[3]) then return -1 end
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
if ARGV[2] ~= '' then redis.call('HSET', KEYS[3], ARGV[1], ARGV[2]) end
return 1
