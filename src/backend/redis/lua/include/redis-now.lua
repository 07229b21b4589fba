-- Included: `now`, Redis' clock in ms. Liveness and expiry are judged on it, never on the nodes'
-- clocks (they may be skewed).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
