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

/**
 * Removes every route of a node and the node itself — unless its heartbeat is newer than ARGV[3]
 * (it came back between the reaper's look and now: returns -1). KEYS: routes, nodeRoutes, routeLog,
 * nodes. ARGV: node, maxlen, heartbeat deadline ('+inf' for a node removing itself).
 */
export const NODE_REMOVE = `
local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])
if seen and ARGV[3] ~= '+inf' and tonumber(seen) >= tonumber(ARGV[3]) then return -1 end
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

/**
 * Claims a client id for a node, raising its fencing epoch. The pending will of the previous
 * connection is taken: returned for publishing when the session ends (Clean Start) or has no will
 * delay, dropped when the session resumes within the delay [MQTT-3.1.3-9].
 * KEYS: owner. ARGV: node, clean ('1'|'0'). Returns { previous node | false, epoch, will | false }.
 */
export const OWNER_CLAIM = `
local prev = redis.call('HGET', KEYS[1], 'node')
local epoch = redis.call('HINCRBY', KEYS[1], 'epoch', 1)
local will = redis.call('HGET', KEYS[1], 'will')
local out = false
if will then
  local delay = tonumber(redis.call('HGET', KEYS[1], 'wdelay') or '0')
  redis.call('HDEL', KEYS[1], 'will', 'wdelay')
  if ARGV[2] == '1' or delay == 0 then out = will end
end
redis.call('HSET', KEYS[1], 'node', ARGV[1])
return {prev or false, epoch, out}`;

/** Stores a connection's will if it still owns the client id. KEYS: owner. ARGV: epoch, will, delay. */
export const WILL_SET = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'will', ARGV[2], 'wdelay', ARGV[3])
return 1`;

/**
 * Takes the will for publishing, once cluster-wide: only while `epoch` still owns the client id and
 * the will is there. KEYS: owner. ARGV: epoch. Returns the will or false.
 */
export const WILL_TAKE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return false end
local will = redis.call('HGET', KEYS[1], 'will')
if not will then return false end
redis.call('HDEL', KEYS[1], 'will', 'wdelay')
return will`;

/**
 * Takes a connection slot of a username: drops expired members, refuses (0) when `max` live ones are
 * there, else adds (or renews) this one. KEYS: userConnections. ARGV: member, max, now, expiresAt, ttlMs.
 */
export const QUOTA_CONN_ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

/**
 * Renews (or re-adds, after another node's release of a taken-over id) this node's live connection
 * slots of a username. KEYS: userConnections. ARGV: expiresAt, ttlMs, members...
 */
export const QUOTA_CONN_RENEW = `
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** Adds a node's count to a username's window and returns the cluster total. KEYS: userMessages. ARGV: delta, ttlMs. */
export const QUOTA_MSG_ADD = `
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n`;
