-- The client's connection ended: the session stays for ARGV[3] seconds (4294967295: for ever) or,
-- with 0, ends now; the owner hash gets a TTL past it (owner-linger.lua; none for ever). Fenced
-- (fence.lua).
-- KEYS: owner, session, queue, inflight, awaitingRelease.
-- ARGV: epoch, node, expiry seconds.
-- Returns 1 (kept), 0 (ended: drop its routes) or false (fenced out).
--! include owner-linger.lua
--! include fence.lua
-- Gone already: ended by this very detach, re-sent after a reconnect lost its answer (0: the
-- routes are dropped again, which is safe), or by a Clean Start elsewhere (fenced above).
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[3] == '0' then
    linger(0)
    return 0
  end
  return false
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  linger(0)
  return 0
end
redis.call('HSET', KEYS[2], 'on', '', 'exp', ARGV[3])
if ARGV[3] ~= '4294967295' then
  for i = 2, 5 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3]) * 1000) end
  -- The owner hash (the fencing epoch, a delayed will) outlives the session it guards.
  linger(tonumber(ARGV[3]) * 1000)
end
return 1
