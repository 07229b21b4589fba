-- Dead nodes' wills due now on Redis' clock.
-- KEYS: dueWills.
-- ARGV: how many at most.
-- Returns the due members.
--! include redis-now.lua
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
