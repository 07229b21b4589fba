-- A reaper drops a dead node's inbox, unless the node registered a newer incarnation on it since
-- (it came back and reads it).
-- KEYS: inbox, inboxRun.
-- ARGV: the reaped incarnation.
-- Returns 1 (dropped) or 0.
local run = redis.call('GET', KEYS[2])
if run and run ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
