-- The serving node takes up to ARGV[3] queued messages after the last one it took, giving each QoS
-- 1/2 message a free packet id recorded in the in-flight hash before it is sent (a new owner re-sends
-- them with the same ids); QoS 0 messages leave the queue as they are taken. ARGV[4] is the position
-- the node knows (the last entry it received): when Redis is further, a fetch ran whose answer was
-- lost (ioredis re-sends a command cut off by a reconnect), and its entries are handed over again
-- first, with the ids they were given. Fenced (fence.lua).
-- The calls are per fetch, not per message (#13.5): free ids are looked up CHUNK at a time (HMGET),
-- and the in-flight records, the QoS 0 deletes and the new position are one call each per CHUNK.
-- KEYS: owner, session, queue, inflight.
-- ARGV: epoch, node, count, known position.
-- Returns false (fenced out) or a flat list of (packet id, record, stream id).
--! include fence.lua
local CHUNK = 1000
local state = redis.call('HMGET', KEYS[2], 'rd', 'np')
local rd = state[1] or '0-0'
local np = tonumber(state[2] or '1')
local out = {}
local function after(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
local room = tonumber(ARGV[3])
if rd ~= ARGV[4] then
  local again = {}
  local inflight = redis.call('HGETALL', KEYS[4])
  for i = 1, #inflight, 2 do
    local sid = string.match(inflight[i + 1], '^(%S+)')
    if after(sid, ARGV[4]) then table.insert(again, {sid, inflight[i]}) end
  end
  table.sort(again, function(x, y) return after(y[1], x[1]) end)
  for _, a in ipairs(again) do
    local e = redis.call('XRANGE', KEYS[3], a[1], a[1])
    if #e > 0 then
      table.insert(out, tonumber(a[2]))
      table.insert(out, e[1][2][2])
      table.insert(out, a[1])
      room = room - 1
    end
  end
end
-- Handed-over entries count against the client's window: no more than it has room for.
local entries = {}
if room > 0 then entries = redis.call('XRANGE', KEYS[3], '(' .. rd, '+', 'COUNT', room) end
if #entries == 0 then return out end
-- Free packet ids for the QoS 1/2 entries, in order from np, skipping ids still in flight.
local need = 0
for _, e in ipairs(entries) do
  if string.byte(e[2][2], 1) % 4 > 0 then need = need + 1 end
end
local ids = {}
local tried = 0
while #ids < need and tried < 65535 do
  local cand = {}
  for _ = 1, math.min(need - #ids, CHUNK, 65535 - tried) do
    table.insert(cand, np)
    np = np % 65535 + 1
  end
  tried = tried + #cand
  local taken = redis.call('HMGET', KEYS[4], unpack(cand))
  for j = 1, #cand do
    if not taken[j] then table.insert(ids, cand[j]) end
  end
end
local records, deletes = {}, {}
local function flush(force)
  if #records >= 2 * CHUNK or (force and #records > 0) then
    redis.call('HSET', KEYS[4], unpack(records))
    records = {}
  end
  if #deletes >= CHUNK or (force and #deletes > 0) then
    redis.call('XDEL', KEYS[3], unpack(deletes))
    deletes = {}
  end
end
local used = 0
for _, e in ipairs(entries) do
  local sid, rec = e[1], e[2][2]
  local pid = 0
  if string.byte(rec, 1) % 4 > 0 then
    -- Every id in flight (cannot happen within a Receive Maximum): the rest waits in the queue.
    if used == #ids then break end
    used = used + 1
    pid = ids[used]
    table.insert(records, pid)
    table.insert(records, sid .. ' p')
  else
    table.insert(deletes, sid)
  end
  flush(false)
  table.insert(out, pid)
  table.insert(out, rec)
  table.insert(out, sid)
  rd = sid
end
flush(true)
redis.call('HSET', KEYS[2], 'rd', rd, 'np', np)
return out
