-- Takes the will for publishing, once cluster-wide: only while `epoch` still owns the client id and
-- the will is there. With the session key (a dead node's will, fired from the due set): its connection
-- is gone, so an owner hash with no session left to guard gets its TTL (owner-linger.lua).
-- KEYS: owner [, session].
-- ARGV: epoch.
-- Returns the will or false.
--! include owner-linger.lua
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return false end
local will = redis.call('HGET', KEYS[1], 'will')
if not will then return false end
redis.call('HDEL', KEYS[1], 'will', 'wdelay')
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 0 then linger(0) end
return will
