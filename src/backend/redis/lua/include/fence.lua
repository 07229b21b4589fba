-- Included: every write of the node serving a session is fenced. It runs only while that node's
-- connection still owns the client id (owner hash KEYS[1]: same epoch ARGV[1] and node ARGV[2]), so a
-- paused or partitioned former owner cannot change the session after a takeover or after the reaper
-- orphaned it. Otherwise the script returns false.
local owner = redis.call('HMGET', KEYS[1], 'epoch', 'node')
if owner[1] ~= ARGV[1] or owner[2] ~= ARGV[2] then
  return false
end
