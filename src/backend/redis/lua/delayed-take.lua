-- Takes up to `limit` due delayed messages for one node: each moves from the schedule to the firing
-- set with a lease (now + `lease` ms) until the node says they were published (delayed-done.lua).
-- Messages whose lease ran out (their node died while publishing) are due again first. One script:
-- two nodes never take the same message.
-- KEYS: delayed, delayedMessages, delayedFiring.
-- ARGV: limit, lease (ms).
-- Returns the stored count, then (id, due ms, encoded message) per message taken.
--! include redis-now.lua
local limit = tonumber(ARGV[1])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(expired) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('ZADD', KEYS[1], now, id)
end
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
local out = { redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[3]) }
for i = 1, #due, 2 do
  local id = due[i]
  local body = redis.call('HGET', KEYS[2], id)
  redis.call('ZREM', KEYS[1], id)
  if body then
    redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), id)
    table.insert(out, id)
    table.insert(out, due[i + 1])
    table.insert(out, body)
  end
end
return out
