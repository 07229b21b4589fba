/**
 * Lua scripts: every multi-key change is one atomic script, and every change to the route table or
 * retained messages appends to its log stream in the same step, so replicas never miss one.
 */

/** KEYS: routes, nodeRoutes, routeLog. ARGV: node, filterKey, maxlen. */
export const ROUTE_ADD = `
if redis.call('HSET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], '1') == 1 then
  redis.call('SADD', KEYS[2], ARGV[2])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'a', 'n', ARGV[1], 'f', ARGV[2])
  return 1
end
redis.call('SADD', KEYS[2], ARGV[2])
return 0`;

/** KEYS: routes, nodeRoutes, routeLog. ARGV: node, filterKey, maxlen. */
export const ROUTE_DEL = `
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HDEL', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 'n', ARGV[1], 'f', ARGV[2])
  return 1
end
return 0`;

/** Removes every route of a node and the node itself. KEYS: routes, nodeRoutes, routeLog, nodes. ARGV: node, maxlen. */
export const NODE_REMOVE = `
local filters = redis.call('SMEMBERS', KEYS[2])
for _, f in ipairs(filters) do
  redis.call('HDEL', KEYS[1], ARGV[1] .. '\\n' .. f)
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', 'n', 'n', ARGV[1], 'f', '')
return #filters`;

/** KEYS: retained, retainedLog. ARGV: topic, encoded message ('' deletes), maxlen. */
export const RETAINED_SET = `
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 's', 't', ARGV[1], 'm', ARGV[2])
end
return 1`;

/** Deletes an expired retained message unless it was replaced meanwhile. KEYS: retained, retainedLog. ARGV: topic, encoded, maxlen. */
export const RETAINED_EXPIRE = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
  return 1
end
return 0`;
