-- A dead node's will, due ARGV[2] ms from now on Redis' clock (kept at its first due time if it is
-- there already).
-- KEYS: dueWills.
-- ARGV: member, delay ms.
-- Returns 1.
--! include redis-now.lua
redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[2]), ARGV[1])
return 1
