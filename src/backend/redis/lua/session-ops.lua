-- The serving node's changes to a session, in order, as (op, a, b) triples: A <pid,pid,...>
-- acknowledged (the messages leave the queue), r <pid> PUBREC received (now waiting for PUBCOMP), R <pid> / C <pid>
-- inbound QoS 2 id received (with the message's dedupe id, kept as q2:<pid>) / released,
-- S <filter> <options> subscribed, U <filter> unsubscribed. Fenced (fence.lua).
-- A run of consecutive acknowledgements (the common batch: a client's PUBACKs of one loop turn)
-- costs three calls per CHUNK of them, not three per message (#13.5).
-- KEYS: owner, session, queue, inflight, awaitingRelease.
-- ARGV: epoch, node, triples...
-- Returns 1, or false when fenced out.
--! include fence.lua
local CHUNK = 1000
local function acknowledge(pids)
  local held = redis.call('HMGET', KEYS[4], unpack(pids))
  local sids, found = {}, {}
  for j = 1, #pids do
    if held[j] then
      table.insert(sids, string.match(held[j], '^(%S+)'))
      table.insert(found, pids[j])
    end
  end
  if #found > 0 then
    redis.call('XDEL', KEYS[3], unpack(sids))
    redis.call('HDEL', KEYS[4], unpack(found))
  end
end
local acks = {}
local i = 3
while i <= #ARGV do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'A' then
    for pid in string.gmatch(a, '%d+') do
      table.insert(acks, pid)
      if #acks == CHUNK then
        acknowledge(acks)
        acks = {}
      end
    end
  else
    if #acks > 0 then
      acknowledge(acks)
      acks = {}
    end
    if op == 'r' then
      local v = redis.call('HGET', KEYS[4], a)
      if v then redis.call('HSET', KEYS[4], a, string.match(v, '^(%S+)') .. ' r') end
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
  i = i + 3
end
if #acks > 0 then acknowledge(acks) end
return 1
