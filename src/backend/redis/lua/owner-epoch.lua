-- The epoch to drop an ended session's routes at: the owner hash's, or, once that expired, one below
-- Redis' clock: above every epoch issued before it expired, below any claim's after
-- (owner-epoch-next.lua).
-- KEYS: owner.
-- ARGV: none.
-- Returns the epoch.
local e = redis.call('HGET', KEYS[1], 'epoch')
if e then return tonumber(e) end
--! include redis-now.lua
return now - 1
