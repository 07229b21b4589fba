-- The reaper of a dead node: a session it served goes offline (its expiry starts now) and the dead
-- node's connection loses ownership, so it cannot write if it was only paused. Fenced by the node's
-- incarnation: a client claimed again by a later run of the node (it came back) is left alone.
-- KEYS: owner, session, queue, inflight, awaitingRelease.
-- ARGV: node, incarnation fence ('=R': only claims of run R, '!R': any but run R, '': any).
-- Returns {expiry seconds, epoch}, {-1, epoch} (claimed by another incarnation: its index entry
-- stays) or false (not served there).
--! include owner-linger.lua
if redis.call('HGET', KEYS[2], 'on') ~= ARGV[1] then return false end
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if ARGV[2] ~= '' then
  local inc, want = redis.call('HGET', KEYS[1], 'inc') or '', string.sub(ARGV[2], 2)
  local same = inc == want
  if (string.sub(ARGV[2], 1, 1) == '=') ~= same then return {-1, epoch} end
end
-- The dead node's connection loses the id; the owner hash then outlives what it guards.
local released = redis.call('HGET', KEYS[1], 'node') == ARGV[1]
if released then redis.call('HSET', KEYS[1], 'node', '') end
local exp = redis.call('HGET', KEYS[2], 'exp') or '0'
if exp == '0' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  if released then linger(0) end
  return {0, epoch}
end
redis.call('HSET', KEYS[2], 'on', '')
if exp ~= '4294967295' then
  for i = 2, 5 do redis.call('PEXPIRE', KEYS[i], tonumber(exp) * 1000) end
  if released then linger(tonumber(exp) * 1000) end
end
return {tonumber(exp), epoch}
