-- Included: linger(keepMs). An owner hash (KEYS[1]) no connection owns any more gets a TTL: what it
-- still guards (keepMs: the session's expiry; a pending will's delay) plus OWNER_LINGER_MS, and never
-- less than Redis' clock needs to pass its epoch by OWNER_LINGER_MS (owner-epoch-next.lua). A claim
-- makes it persistent.
local function linger(keepMs)
  --! include redis-now.lua
  local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
  if redis.call('HEXISTS', KEYS[1], 'will') == 1 then
    keepMs = math.max(keepMs, tonumber(redis.call('HGET', KEYS[1], 'wdelay') or '0') * 1000)
  end
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(keepMs, epoch - now) + {{OWNER_LINGER_MS}}))
end
