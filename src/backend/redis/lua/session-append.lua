-- Publishers queue deliveries for one persistent session (any node may: this is a mailbox, not an
-- owner's write), batched per loop turn. Offline sessions take no QoS 0; a full queue takes nothing.
-- With flow control (a QoS 1/2 publisher waiting for its acknowledgement), an online session's queue
-- may grow to four times the limit, and an append that leaves a backlog (queued and not yet taken by
-- the serving node: the queue less the in-flight hash) past half the limit is "congested": its
-- publisher's acknowledgement waits for the backlog to drain, so publishers slow down instead of
-- overflowing it. What is in flight does not count there: the client's window (up to the limit)
-- is what the serving node took, and counting it held publishers back whenever the window was
-- more than half the limit (#13.5). A batch is applied once: a sorted set beside the queue keeps the batches applied
-- lately (sending node, its run, batch number), so a batch ioredis re-sends after a reconnect cut
-- off its answer is recognised and not queued twice, in whatever order the batches land (on Redis
-- Cluster, ioredis retries each script failed by a shard's failover on its own schedule: a batch
-- can land after the sender's next one). The newest APPLIED_KEEP are kept, for an hour after the
-- last. A delivery with a dedupe id (a QoS 2 message of a persistent publisher, routed again after
-- its publisher re-sent it) is queued once per DEDUPE_WINDOW_MS: the ids live in another sorted set.
-- KEYS: session, queue, dedupe, applied batches, inflight.
-- ARGV: max queued, node, run, batch number, then (record, qos, flow '1'|'0', dedupe id or '')
-- quadruples.
-- Returns {-2} (no such session: it ended) or {node serving it ('' offline), one result per
-- delivery: 1 queued (or queued before), 2 queued but congested, -1 queue full, -3 QoS 0 to an
-- offline session}.
local on = redis.call('HGET', KEYS[1], 'on')
if not on then return {-2} end
local batch = ARGV[2] .. '/' .. ARGV[3] .. '/' .. ARGV[4]
if redis.call('ZSCORE', KEYS[4], batch) then
  local out = {on}
  for i = 5, #ARGV, 4 do table.insert(out, 1) end
  return out
end
--! include redis-now.lua
redis.call('ZADD', KEYS[4], now, batch)
if redis.call('ZCARD', KEYS[4]) > {{APPLIED_KEEP}} * 2 then
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -{{APPLIED_KEEP}} - 1)
end
redis.call('PEXPIRE', KEYS[4], 3600000)
local max = tonumber(ARGV[1])
local mark = math.max(8, math.floor(max / 2))
local n = redis.call('XLEN', KEYS[2])
local held = redis.call('HLEN', KEYS[5])
local out = {on}
local added = false
local deduped = false
for i = 5, #ARGV, 4 do
  local flow = on ~= '' and ARGV[i + 2] == '1'
  local id = ARGV[i + 3]
  if id ~= '' and redis.call('ZSCORE', KEYS[3], id) then
    table.insert(out, 1)
  elseif on == '' and ARGV[i + 1] == '0' then
    table.insert(out, -3)
  elseif n >= (flow and max * 4 or max) then
    table.insert(out, -1)
  else
    redis.call('XADD', KEYS[2], '*', 'm', ARGV[i])
    n = n + 1
    added = true
    if id ~= '' then
      redis.call('ZADD', KEYS[3], now, id)
      deduped = true
    end
    table.insert(out, (flow and n - held >= mark) and 2 or 1)
  end
end
if deduped then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - {{DEDUPE_WINDOW_MS}})
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -{{DEDUPE_MAX}} - 1)
  redis.call('PEXPIRE', KEYS[3], {{DEDUPE_WINDOW_MS}})
end
if added and on == '' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return out
