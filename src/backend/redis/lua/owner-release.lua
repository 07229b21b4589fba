-- The connection that owns a client id ended and keeps no session in Redis (a clean session): its
-- owner hash gets a TTL (owner-linger.lua; a pending will's delay is kept). Fenced: only while that
-- connection (epoch, node) still owns the id.
-- KEYS: owner, session.
-- ARGV: epoch, node.
-- Returns 1, 0 (a session is stored: session-detach.lua gives the TTL) or false (fenced out).
--! include owner-linger.lua
--! include fence.lua
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
linger(0)
return 1
