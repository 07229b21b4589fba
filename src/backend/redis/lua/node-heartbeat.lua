-- A node's heartbeat, scored with Redis' clock. ARGV[3] 'join' registers run ARGV[2] as the node's
-- incarnation; 'beat' only refreshes it while ARGV[2] is still the registered one (else a reaper
-- removed the node: returns 0 and writes nothing, the node joins again under a new incarnation).
-- KEYS: nodes, nodeRuns.
-- ARGV: node, incarnation, 'join'|'beat'.
-- Returns 1 or 0.
--! include redis-now.lua
if ARGV[3] == 'beat' and redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1
