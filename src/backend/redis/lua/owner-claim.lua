-- Claims a client id for a node, raising its fencing epoch, and opens its persistent session in the
-- same step, so the snapshot a new owner resumes from is one no former owner can change afterwards.
-- The pending will of the previous connection is taken: returned for publishing when the session
-- ends (Clean Start) or has no will delay, dropped when the session resumes within the delay
-- [MQTT-3.1.3-9]. Clean Start discards a stored session [MQTT-3.1.2-4]; otherwise a stored session is
-- resumed [MQTT-3.1.2-5] and loaded: its fields, its in-flight messages (packet id, phase, record)
-- and its inbound QoS 2 ids. A session is created when the connection asks for an expiry > 0.
-- ARGV[4] names the claim (node, run, number): a claim ioredis re-sends after a reconnect cut off its
-- answer finds its name stored and answers what the first run did, without claiming again (it would
-- raise the epoch twice, name this node as the previous owner and lose the will the first run took).
-- KEYS: owner, session, queue, inflight, awaitingRelease.
-- ARGV: node, clean ('1'|'0'), session expiry seconds (0: none wanted), claim name, the node's
-- incarnation (a reaper of an earlier incarnation leaves this claim alone).
-- Returns { previous node | false, epoch, will | false, discarded 0|1, present 0|1, session fields,
-- in-flight quadruples, awaiting-release ids }, or the error 'claim superseded' (a re-send that came
-- after another claim took the id).
--! include owner-epoch-next.lua
local prev, epoch, out, discarded, present
if redis.call('HGET', KEYS[1], 'cn') == ARGV[4] then
  -- Re-sent, but another claim (or the reaper of this node) took the id since: too late.
  if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return redis.error_reply('claim superseded') end
  prev = redis.call('HGET', KEYS[1], 'cp')
  epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch'))
  out = redis.call('HGET', KEYS[1], 'cw') or false
  discarded = tonumber(redis.call('HGET', KEYS[1], 'cd'))
  present = tonumber(redis.call('HGET', KEYS[1], 'cs'))
else
  prev = redis.call('HGET', KEYS[1], 'node') or ''
  epoch = nextEpoch()
  redis.call('PERSIST', KEYS[1])
  local will = redis.call('HGET', KEYS[1], 'will')
  out = false
  if will then
    local delay = tonumber(redis.call('HGET', KEYS[1], 'wdelay') or '0')
    redis.call('HDEL', KEYS[1], 'will', 'wdelay')
    if ARGV[2] == '1' or delay == 0 then out = will end
  end
  discarded, present = 0, 0
  if ARGV[2] == '1' then
    discarded = redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5]) > 0 and 1 or 0
  elseif redis.call('EXISTS', KEYS[2]) == 1 then
    present = 1
  end
  redis.call('HSET', KEYS[1], 'node', ARGV[1], 'inc', ARGV[5], 'cn', ARGV[4], 'cp', prev, 'cd', discarded, 'cs', present)
  if out then redis.call('HSET', KEYS[1], 'cw', out) else redis.call('HDEL', KEYS[1], 'cw') end
end
if prev == '' then prev = false end
local fields, inflight, rel = {}, {}, {}
if present == 1 then
  -- Fields ab:<node> are what earlier versions (0.1.0) kept of applied append batches (now a sorted set
  -- of their own, which stays across claims): dropped.
  local all = redis.call('HGETALL', KEYS[2])
  for i = 1, #all, 2 do
    if string.sub(all[i], 1, 3) == 'ab:' then
      redis.call('HDEL', KEYS[2], all[i])
    else
      table.insert(fields, all[i])
      table.insert(fields, all[i + 1])
    end
  end
  local raw = redis.call('HGETALL', KEYS[4])
  for i = 1, #raw, 2 do
    local sid, phase = string.match(raw[i + 1], '^(%S+) (%S+)$')
    local entry = redis.call('XRANGE', KEYS[3], sid, sid)
    if #entry > 0 then
      table.insert(inflight, raw[i])
      table.insert(inflight, phase)
      table.insert(inflight, entry[1][2][2])
      table.insert(inflight, sid)
    else
      redis.call('HDEL', KEYS[4], raw[i])
    end
  end
  rel = redis.call('SMEMBERS', KEYS[5])
end
if present == 1 or tonumber(ARGV[3]) > 0 then
  redis.call('HSET', KEYS[2], 'on', ARGV[1], 'exp', ARGV[3])
  redis.call('HSETNX', KEYS[2], 'rd', '0-0')
  redis.call('HSETNX', KEYS[2], 'np', '1')
  for i = 2, 5 do redis.call('PERSIST', KEYS[i]) end
end
return {prev, epoch, out, discarded, present, fields, inflight, rel}
