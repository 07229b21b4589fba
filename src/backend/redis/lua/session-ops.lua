-- The serving node's changes to a session, in order, as (op, a, b) triples: a <pid> acknowledged
-- (the message leaves the queue), r <pid> PUBREC received (now waiting for PUBCOMP), R <pid> / C <pid>
-- inbound QoS 2 id received (with the message's dedupe id, kept as q2:<pid>) / released,
-- S <filter> <options> subscribed, U <filter> unsubscribed. Fenced (fence.lua).
-- KEYS: owner, session, queue, inflight, awaitingRelease.
-- ARGV: epoch, node, triples...
-- Returns 1, or false when fenced out.
--! include fence.lua
for i = 3, #ARGV, 3 do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'a' or op == 'r' then
    local v = redis.call('HGET', KEYS[4], a)
    if v then
      local sid = string.match(v, '^(%S+)')
      if op == 'a' then
        redis.call('XDEL', KEYS[3], sid)
        redis.call('HDEL', KEYS[4], a)
      else
        redis.call('HSET', KEYS[4], a, sid .. ' r')
      end
    end
  elseif op == 'R' then
    redis.call('SADD', KEYS[5], a)
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[2], 'q2:' .. a, ARGV[i + 2]) end
  elseif op == 'C' then
    redis.call('SREM', KEYS[5], a)
    redis.call('HDEL', KEYS[2], 'q2:' .. a)
  elseif op == 'S' then redis.call('HSET', KEYS[2], 's:' .. a, ARGV[i + 2])
  elseif op == 'U' then redis.call('HDEL', KEYS[2], 's:' .. a)
  end
end
return 1
