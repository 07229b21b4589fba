-- Included: nextEpoch(), the next fencing epoch of a client id (KEYS[1] its owner hash): above the
-- stored one, and never below Redis' clock in ms. An owner hash no connection owns expires
-- (owner-linger.lua) only once Redis' clock passed its epoch by OWNER_LINGER_MS, so a claim after it
-- expired still gets a higher epoch than any issued before: no epoch goes back, and a former
-- connection stays fenced out. (Epochs stay below 2^53 and 14 digits, exact in Lua's doubles and in
-- %.14g.) Sets `epoch` and returns it.
local function nextEpoch()
  --! include redis-now.lua
  local e = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') + 1, now)
  redis.call('HSET', KEYS[1], 'epoch', string.format('%.0f', e))
  return e
end
