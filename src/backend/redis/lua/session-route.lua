-- Sets (options given) or deletes (ARGV[3] '') the route of one plain subscription of a persistent
-- session, logged for the replicas. The routes live in the `{p}` slot, apart from the session, so
-- they carry their own fence: the client's route hash keeps, per filter, the epoch of the connection
-- that routed it, and under the field '' (no filter is empty) the floor: the epoch of the claim that
-- last dropped the client's routes. A write below the floor — from a former owner that was paused
-- between storing a subscription and routing it — is refused.
-- KEYS: sessionRoutes, clientRoutes, routeLog.
-- ARGV: clientId, filter, options, maxlen, epoch.
-- Returns the route-log entry written (a route set, or deleted), 0 (nothing to delete) or -1
-- (fenced out).
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[2], '') or '0') then return -1 end
-- Nor below the epoch that routed this filter last (a paused former owner after a resume elsewhere).
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') then return -1 end
local field = ARGV[1] .. '\0' .. ARGV[2]
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  if redis.call('HDEL', KEYS[1], field) == 0 then return 0 end
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'u', 'n', ARGV[1], 'f', ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[1], field, ARGV[3])
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 's', 'n', ARGV[1], 'f', ARGV[2], 'o', ARGV[3])
