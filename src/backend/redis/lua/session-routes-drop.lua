-- Drops the routes of a session that ended, those routed at epoch ARGV[3] or before (a newer session
-- of the same id may have routed its own meanwhile), and raises the client's floor to ARGV[3] so no
-- older connection can route again. The floor outlives the routes for a day.
-- KEYS: sessionRoutes, clientRoutes, routeLog.
-- ARGV: clientId, maxlen, epoch.
-- Returns how many routes were dropped.
local epoch = tonumber(ARGV[3])
local routes = redis.call('HGETALL', KEYS[2])
local n, kept = 0, 0
for i = 1, #routes, 2 do
  local f, e = routes[i], tonumber(routes[i + 1])
  if f ~= '' then
    if e <= epoch then
      redis.call('HDEL', KEYS[2], f)
      if redis.call('HDEL', KEYS[1], ARGV[1] .. '\0' .. f) == 1 then
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', 'u', 'n', ARGV[1], 'f', f)
      end
      n = n + 1
    else
      kept = kept + 1
    end
  end
end
if epoch > tonumber(redis.call('HGET', KEYS[2], '') or '0') then redis.call('HSET', KEYS[2], '', epoch) end
if kept == 0 then redis.call('PEXPIRE', KEYS[2], 86400000) end
return n
