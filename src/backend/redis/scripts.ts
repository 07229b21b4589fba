/**
 * Lua scripts: every multi-key change is one atomic script, and every change to the route table or
 * retained messages appends to its log stream in the same step, so replicas never miss one.
 */

import { DEDUPE_MAX, DEDUPE_WINDOW_MS } from '../../message.js';

/**
 * KEYS: routes, nodeRoutes, routeLog. ARGV: node, filterKey, maxlen. Returns the route-log entry
 * every node must have applied for the route to be in its replica: the one added, or (the route
 * was there already) the log's last.
 */
export const ROUTE_ADD = `
redis.call('SADD', KEYS[2], ARGV[2])
if redis.call('HSET', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2], '1') == 1 then
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'a', 'n', ARGV[1], 'f', ARGV[2])
end
local last = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', 1)
if #last == 0 then return '0-0' end
return last[1][1]`;

/** KEYS: routes, nodeRoutes, routeLog. ARGV: node, filterKey, maxlen. */
export const ROUTE_DEL = `
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('HDEL', KEYS[1], ARGV[1] .. '\\n' .. ARGV[2]) == 1 then
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 'n', ARGV[1], 'f', ARGV[2])
  return 1
end
return 0`;

/** Redis' clock in ms: liveness is judged on it, never on the nodes' clocks (they may be skewed). */
const REDIS_NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/**
 * A node's heartbeat, scored with Redis' clock. ARGV[3] 'join' registers run ARGV[2] as the node's
 * incarnation; 'beat' only refreshes it while ARGV[2] is still the registered one (else a reaper
 * removed the node: returns 0 and writes nothing, the node joins again under a new incarnation).
 * KEYS: nodes, nodeRuns. ARGV: node, incarnation, 'join'|'beat'. Returns 1 or 0.
 */
export const NODE_HEARTBEAT = `${REDIS_NOW}
if ARGV[3] == 'beat' and redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[1])
return 1`;

/**
 * The node set on Redis' clock. KEYS: nodes, nodeRuns. Returns {now, node, last heartbeat,
 * incarnation, ...}.
 */
export const NODES_SCAN = `${REDIS_NOW}
local out = {now}
local all = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #all, 2 do
  table.insert(out, all[i])
  table.insert(out, all[i + 1])
  table.insert(out, redis.call('HGET', KEYS[2], all[i]) or '')
end
return out`;

/**
 * Removes every route of a node and the node itself. A reaper (ARGV[3] an incarnation) removes it
 * only while that incarnation is still registered and its heartbeat (Redis' clock) is at least
 * ARGV[4] ms old: a node that came back, or restarted as a new run, is kept (returns -1). A node
 * removing itself passes '' (no check). A reaper's removal is recorded in `reaping` (node ->
 * incarnation) until its other steps are done: a survivor finishes them if the reaper dies.
 * KEYS: routes, nodeRoutes, routeLog, nodes, nodeRuns, reaping.
 * ARGV: node, maxlen, incarnation or '', minimum heartbeat age (ms).
 */
export const NODE_REMOVE = `${REDIS_NOW}
if ARGV[3] ~= '' then
  if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[3] then return -1 end
  local seen = redis.call('ZSCORE', KEYS[4], ARGV[1])
  if seen and now - tonumber(seen) < tonumber(ARGV[4]) then return -1 end
end
local filters = redis.call('SMEMBERS', KEYS[2])
for _, f in ipairs(filters) do
  redis.call('HDEL', KEYS[1], ARGV[1] .. '\\n' .. f)
end
redis.call('DEL', KEYS[2])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if ARGV[3] ~= '' then redis.call('HSET', KEYS[6], ARGV[1], ARGV[3]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', 'n', 'n', ARGV[1], 'f', '')
return #filters`;

/**
 * A reaper drops a dead node's inbox, unless the node registered a newer incarnation on it since
 * (it came back and reads it). KEYS: inbox, inboxRun. ARGV: the reaped incarnation. Returns 1 or 0.
 */
export const INBOX_DROP = `
local run = redis.call('GET', KEYS[2])
if run and run ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
return 1`;

/**
 * The largest encoded retained message the retained log carries itself (op s); a larger one is
 * logged as op h (its topic only: readers take the body from the retained hash). So the log, capped
 * at about logMaxLen entries, holds at most about logMaxLen x (this + topic) bytes, however large
 * the payloads (#11.12c), and the common small message reaches replicas without a second read.
 */
export const RETAINED_LOG_INLINE_MAX = 256;

/**
 * How long a retained writer's (node run's) last sequence number is kept after its last write. A
 * re-send ioredis makes after a reconnect comes within it; a run that dies leaves nothing for longer.
 */
export const RETAINED_SEQ_KEEP_MS = 86_400_000;

/** Sequence numbers of a retained writer's applied writes kept (RETAINED_SET): its re-send window. */
export const RETAINED_SEQ_WINDOW = 1024;

/**
 * KEYS: retained, retainedLog, retainedSeq (the writer's), retainedExpiry. ARGV: topic, encoded
 * message ('' deletes), maxlen, the writer's sequence number, ms until the message expires ('' never).
 * The writer (node run) remembers the numbers of its writes applied lately: one applied before is a
 * write ioredis re-sent after a reconnect cut off its answer (possibly after a newer write by
 * another node): ignored, returns 0. Writes not applied yet are applied in whatever order they land
 * (on Redis Cluster ioredis retries each script a failover failed on its own schedule). A number
 * below the RETAINED_SEQ_WINDOW kept is taken for an old re-send. The numbers are kept
 * RETAINED_SEQ_KEEP_MS past the writer's last write.
 * A message with an expiry is indexed by its expiry time on Redis' clock (RETAINED_SWEEP); the index
 * entry changes with the message, so it always names the current one.
 */
export const RETAINED_SET = `${REDIS_NOW}
local seq = tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[3], ARGV[4]) then return 0 end
local kept = redis.call('ZCARD', KEYS[3])
if kept >= ${RETAINED_SEQ_WINDOW} and seq < tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]) then
  return 0
end
redis.call('ZADD', KEYS[3], seq, ARGV[4])
if kept + 1 > ${RETAINED_SEQ_WINDOW * 2} then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -${RETAINED_SEQ_WINDOW} - 1)
end
redis.call('PEXPIRE', KEYS[3], ${RETAINED_SEQ_KEEP_MS})
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if #ARGV[2] <= ${RETAINED_LOG_INLINE_MAX} then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 's', 't', ARGV[1], 'm', ARGV[2])
  else
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'h', 't', ARGV[1])
  end
end
if ARGV[2] == '' or ARGV[5] == '' then
  redis.call('ZREM', KEYS[4], ARGV[1])
else
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[5]), ARGV[1])
end
return 1`;

/**
 * Deletes an expired retained message unless it was replaced meanwhile. KEYS: retained,
 * retainedLog, retainedExpiry. ARGV: topic, encoded, maxlen.
 */
export const RETAINED_EXPIRE = `
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('ZREM', KEYS[3], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
  return 1
end
return 0`;

/**
 * Removes up to ARGV[2] retained messages whose expiry time (Redis' clock) passed, whether or not
 * anyone reads them, logging each delete for the replicas. The index entry is replaced or removed in
 * the same script as its message (RETAINED_SET, RETAINED_EXPIRE), so a due entry names the message
 * stored now: the compare of RETAINED_EXPIRE is the index score here, and a replaced message is kept.
 * KEYS: retained, retainedLog, retainedExpiry. ARGV: maxlen, batch. Returns how many were due.
 */
export const RETAINED_SWEEP = `${REDIS_NOW}
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
for _, topic in ipairs(due) do
  redis.call('ZREM', KEYS[3], topic)
  if redis.call('HDEL', KEYS[1], topic) == 1 then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'op', 'd', 't', topic, 'm', '')
  end
end
return #due`;

/**
 * How long an owner hash outlives what it still guards (a session, a pending will) once no
 * connection owns it: a claim or a will take in flight when the client left still finds it, and a
 * Redis clock stepped back by less than this keeps epochs rising (OWNER_EPOCH_NEXT).
 */
export const OWNER_LINGER_MS = 60_000;

/**
 * The next fencing epoch of a client id (KEYS[1] its owner hash): above the stored one, and never
 * below Redis' clock in ms. An owner hash no connection owns expires (OWNER_LINGER) only once Redis'
 * clock passed its epoch by OWNER_LINGER_MS, so a claim after it expired still gets a higher epoch
 * than any issued before: no epoch goes back, and a former connection stays fenced out. (Epochs stay
 * below 2^53 and 14 digits, exact in Lua's doubles and in %.14g.) Sets \`epoch\` and returns it.
 */
const OWNER_EPOCH_NEXT = `
local function nextEpoch()
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local e = math.max(tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0') + 1, now)
  redis.call('HSET', KEYS[1], 'epoch', string.format('%.0f', e))
  return e
end
`;

/**
 * An owner hash (KEYS[1]) no connection owns any more gets a TTL: what it still guards (ARGV keepMs:
 * the session's expiry; a pending will's delay) plus OWNER_LINGER_MS, and never less than Redis'
 * clock needs to pass its epoch by OWNER_LINGER_MS (OWNER_EPOCH_NEXT). A claim makes it persistent.
 */
const OWNER_LINGER = `
local function linger(keepMs)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
  if redis.call('HEXISTS', KEYS[1], 'will') == 1 then
    keepMs = math.max(keepMs, tonumber(redis.call('HGET', KEYS[1], 'wdelay') or '0') * 1000)
  end
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', math.max(keepMs, epoch - now) + ${OWNER_LINGER_MS}))
end
`;

/**
 * Claims a client id for a node, raising its fencing epoch, and opens its persistent session in the
 * same step, so the snapshot a new owner resumes from is one no former owner can change afterwards.
 * The pending will of the previous connection is taken: returned for publishing when the session
 * ends (Clean Start) or has no will delay, dropped when the session resumes within the delay
 * [MQTT-3.1.3-9]. Clean Start discards a stored session [MQTT-3.1.2-4]; otherwise a stored session is
 * resumed [MQTT-3.1.2-5] and loaded: its fields, its in-flight messages (packet id, phase, record)
 * and its inbound QoS 2 ids. A session is created when the connection asks for an expiry > 0.
 * ARGV[4] names the claim (node, run, number): a claim ioredis re-sends after a reconnect cut off its
 * answer finds its name stored and answers what the first run did, without claiming again (it would
 * raise the epoch twice, name this node as the previous owner and lose the will the first run took).
 * KEYS: owner, session, queue, inflight, awaitingRelease.
 * ARGV: node, clean ('1'|'0'), session expiry seconds (0: none wanted), claim name, the node's
 * incarnation (a reaper of an earlier incarnation leaves this claim alone).
 * Returns { previous node | false, epoch, will | false, discarded 0|1, present 0|1, session fields,
 * in-flight quadruples, awaiting-release ids }.
 */
export const OWNER_CLAIM = `${OWNER_EPOCH_NEXT}
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
return {prev, epoch, out, discarded, present, fields, inflight, rel}`;

/** Stores a connection's will if it still owns the client id. KEYS: owner. ARGV: epoch, will, delay. */
export const WILL_SET = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'will', ARGV[2], 'wdelay', ARGV[3])
return 1`;

/** A dead node's will, due ARGV[2] ms from now on Redis' clock. KEYS: dueWills. ARGV: member, delay ms. */
export const DUE_WILL_ADD = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'NX', now + tonumber(ARGV[2]), ARGV[1])
return 1`;

/** Dead nodes' wills due now on Redis' clock, at most ARGV[1]. KEYS: dueWills. */
export const DUE_WILLS = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))`;

/**
 * Takes the will for publishing, once cluster-wide: only while `epoch` still owns the client id and
 * the will is there. KEYS: owner [, session]. ARGV: epoch. Returns the will or false. With the
 * session key (a dead node's will, fired from the due set): its connection is gone, so an owner
 * hash with no session left to guard gets its TTL (OWNER_LINGER).
 */
export const WILL_TAKE = `${OWNER_LINGER}
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return false end
local will = redis.call('HGET', KEYS[1], 'will')
if not will then return false end
redis.call('HDEL', KEYS[1], 'will', 'wdelay')
if #KEYS > 1 and redis.call('EXISTS', KEYS[2]) == 0 then linger(0) end
return will`;

/**
 * The connection that owns a client id ended and keeps no session in Redis (a clean session): its
 * owner hash gets a TTL (OWNER_LINGER; a pending will's delay is kept). Fenced: only while that
 * connection (epoch, node) still owns the id. KEYS: owner, session. ARGV: epoch, node. Returns 1,
 * 0 (a session is stored: SESSION_DETACH gives the TTL) or false (fenced out).
 */
export const OWNER_RELEASE = `${OWNER_LINGER}
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then
  return false
end
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
linger(0)
return 1`;

/**
 * The epoch to drop an ended session's routes at (KEYS: owner): the owner hash's, or, once that
 * expired, one below Redis' clock: above every epoch issued before it expired, below any claim's
 * after (OWNER_EPOCH_NEXT).
 */
export const OWNER_EPOCH = `
local e = redis.call('HGET', KEYS[1], 'epoch')
if e then return tonumber(e) end
local t = redis.call('TIME')
return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - 1`;

/**
 * Takes a connection slot of a username: drops expired members, refuses (0) when `max` live ones are
 * there, else adds (or renews) this one. KEYS: userConnections. ARGV: member, max, now, expiresAt, ttlMs.
 */
export const QUOTA_CONN_ACQUIRE = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return 1`;

/**
 * Renews (or re-adds, after another node's release of a taken-over id) this node's live connection
 * slots of a username. KEYS: userConnections. ARGV: expiresAt, ttlMs, members...
 */
export const QUOTA_CONN_RENEW = `
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1`;

/** Adds a node's count to a username's window and returns the cluster total. KEYS: userMessages. ARGV: delta, ttlMs. */
export const QUOTA_MSG_ADD = `
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n`;

// ---- persistent sessions ---------------------------------------------------------------------------
// Every write of the node serving a session is fenced: it runs only while that node's connection
// still owns the client id (owner hash: same epoch and node), so a paused or partitioned former
// owner cannot change the session after a takeover or after the reaper orphaned it.

const FENCE = `
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] or redis.call('HGET', KEYS[1], 'node') ~= ARGV[2] then
  return false
end`;

/** Append batches a session remembers (SESSION_APPEND): far more than ioredis has in flight to it. */
export const APPLIED_KEEP = 1024;

/**
 * Publishers queue deliveries for one persistent session (any node may: this is a mailbox, not an
 * owner's write), batched per loop turn. Offline sessions take no QoS 0; a full queue takes nothing.
 * With flow control (a QoS 1/2 publisher waiting for its acknowledgement), an online session's queue
 * may grow to four times the limit, and an append past half the limit is "congested": its
 * publisher's acknowledgement waits for the queue to drain, so publishers slow down instead of
 * overflowing it. A batch is applied once: a sorted set beside the queue keeps the batches applied
 * lately (sending node, its run, batch number), so a batch ioredis re-sends after a reconnect cut
 * off its answer is recognised and not queued twice, in whatever order the batches land (on Redis
 * Cluster, ioredis retries each script failed by a shard's failover on its own schedule: a batch
 * can land after the sender's next one). The newest APPLIED_KEEP are kept, for an hour after the
 * last. A delivery with a dedupe id (a QoS 2 message of a persistent publisher, routed again after
 * its publisher re-sent it) is queued once per DEDUPE_WINDOW_MS: the ids live in another sorted set.
 * KEYS: session, queue, dedupe, applied batches. ARGV: max queued, node, run, batch number, then
 * (record, qos, flow '1'|'0', dedupe id or '') quadruples. Returns {-2} (no such session: it ended)
 * or {node serving it ('' offline), one result per delivery: 1 queued (or queued before), 2 queued
 * but congested, -1 queue full, -3 QoS 0 to an offline session}.
 */
export const SESSION_APPEND = `
local on = redis.call('HGET', KEYS[1], 'on')
if not on then return {-2} end
local batch = ARGV[2] .. '/' .. ARGV[3] .. '/' .. ARGV[4]
if redis.call('ZSCORE', KEYS[4], batch) then
  local out = {on}
  for i = 5, #ARGV, 4 do table.insert(out, 1) end
  return out
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], now, batch)
if redis.call('ZCARD', KEYS[4]) > ${APPLIED_KEEP * 2} then
  redis.call('ZREMRANGEBYRANK', KEYS[4], 0, -${APPLIED_KEEP} - 1)
end
redis.call('PEXPIRE', KEYS[4], 3600000)
local max = tonumber(ARGV[1])
local mark = math.max(8, math.floor(max / 2))
local n = redis.call('XLEN', KEYS[2])
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
    table.insert(out, (flow and n >= mark) and 2 or 1)
  end
end
if deduped then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - ${DEDUPE_WINDOW_MS})
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -${DEDUPE_MAX} - 1)
  redis.call('PEXPIRE', KEYS[3], ${DEDUPE_WINDOW_MS})
end
if added and on == '' then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
return out`;

/**
 * The serving node takes up to ARGV[3] queued messages after the last one it took, giving each QoS
 * 1/2 message a free packet id recorded in the in-flight hash before it is sent (a new owner re-sends
 * them with the same ids); QoS 0 messages leave the queue as they are taken. ARGV[4] is the position
 * the node knows (the last entry it received): when Redis is further, a fetch ran whose answer was
 * lost (ioredis re-sends a command cut off by a reconnect), and its entries are handed over again
 * first, with the ids they were given. KEYS: owner, session, queue, inflight. ARGV: epoch, node,
 * count, known position. Returns false (fenced out) or a flat list of (packet id, record, stream id).
 */
export const SESSION_FETCH = `${FENCE}
local rd = redis.call('HGET', KEYS[2], 'rd') or '0-0'
local np = tonumber(redis.call('HGET', KEYS[2], 'np') or '1')
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
for _, e in ipairs(entries) do
  local sid, rec = e[1], e[2][2]
  local pid = 0
  if string.byte(rec, 1) % 4 > 0 then
    for _ = 1, 65535 do
      if redis.call('HEXISTS', KEYS[4], np) == 0 then break end
      np = np % 65535 + 1
    end
    pid = np
    np = np % 65535 + 1
    redis.call('HSET', KEYS[4], pid, sid .. ' p')
  else
    redis.call('XDEL', KEYS[3], sid)
  end
  table.insert(out, pid)
  table.insert(out, rec)
  table.insert(out, sid)
  rd = sid
end
if #entries > 0 then redis.call('HSET', KEYS[2], 'rd', rd, 'np', np) end
return out`;

/**
 * The serving node's changes to a session, in order, as (op, a, b) triples: a <pid> acknowledged
 * (the message leaves the queue), r <pid> PUBREC received (now waiting for PUBCOMP), R <pid> / C <pid>
 * inbound QoS 2 id received (with the message's dedupe id, kept as q2:<pid>) / released,
 * S <filter> <options> subscribed, U <filter> unsubscribed.
 * KEYS: owner, session, queue, inflight, awaitingRelease. ARGV: epoch, node, triples... Returns 1, or
 * false when fenced out.
 */
export const SESSION_OPS = `${FENCE}
for i = 3, #ARGV, 3 do
  local op, a = ARGV[i], ARGV[i + 1]
  if op == 'a' or op == 'r' then
    local v = redis.call('HGET', KEYS[4], a)
    if v then
      local sid = string.match(v, '^(%S+)')
      if op == 'a' then
        redis.call('XDEL', KEYS[3], sid)
        redis.call('HDEL', KEYS[4], a)
      else
        redis.call('HSET', KEYS[4], a, sid .. ' r')
      end
    end
  elseif op == 'R' then
    redis.call('SADD', KEYS[5], a)
    if ARGV[i + 2] ~= '' then redis.call('HSET', KEYS[2], 'q2:' .. a, ARGV[i + 2]) end
  elseif op == 'C' then
    redis.call('SREM', KEYS[5], a)
    redis.call('HDEL', KEYS[2], 'q2:' .. a)
  elseif op == 'S' then redis.call('HSET', KEYS[2], 's:' .. a, ARGV[i + 2])
  elseif op == 'U' then redis.call('HDEL', KEYS[2], 's:' .. a)
  end
end
return 1`;

/**
 * The client's connection ended: the session stays for ARGV[3] seconds (4294967295: for ever) or,
 * with 0, ends now; the owner hash gets a TTL past it (OWNER_LINGER; none for ever). KEYS: owner,
 * session, queue, inflight, awaitingRelease. ARGV: epoch, node, expiry seconds. Returns 1 (kept), 0
 * (ended: drop its routes) or false (fenced out).
 */
export const SESSION_DETACH = `${OWNER_LINGER}${FENCE}
-- Gone already: ended by this very detach, re-sent after a reconnect lost its answer (0: the
-- routes are dropped again, which is safe), or by a Clean Start elsewhere (fenced above).
if redis.call('EXISTS', KEYS[2]) == 0 then
  if ARGV[3] == '0' then
    linger(0)
    return 0
  end
  return false
end
if ARGV[3] == '0' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  linger(0)
  return 0
end
redis.call('HSET', KEYS[2], 'on', '', 'exp', ARGV[3])
if ARGV[3] ~= '4294967295' then
  for i = 2, 5 do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[3]) * 1000) end
  -- The owner hash (the fencing epoch, a delayed will) outlives the session it guards.
  linger(tonumber(ARGV[3]) * 1000)
end
return 1`;

/**
 * The reaper of a dead node: a session it served goes offline (its expiry starts now) and the dead
 * node's connection loses ownership, so it cannot write if it was only paused. Fenced by the node's
 * incarnation: a client claimed again by a later run of the node (it came back) is left alone.
 * KEYS: owner, session, queue, inflight, awaitingRelease. ARGV: node, incarnation fence ('=R': only
 * claims of run R, '!R': any but run R, '': any). Returns {expiry seconds, epoch}, {-1, epoch}
 * (claimed by another incarnation: its index entry stays) or false (not served there).
 */
export const SESSION_ORPHAN = `${OWNER_LINGER}
if redis.call('HGET', KEYS[2], 'on') ~= ARGV[1] then return false end
local epoch = tonumber(redis.call('HGET', KEYS[1], 'epoch') or '0')
if ARGV[2] ~= '' then
  local inc, want = redis.call('HGET', KEYS[1], 'inc') or '', string.sub(ARGV[2], 2)
  local same = inc == want
  if (string.sub(ARGV[2], 1, 1) == '=') ~= same then return {-1, epoch} end
end
-- The dead node's connection loses the id; the owner hash then outlives what it guards.
local released = redis.call('HGET', KEYS[1], 'node') == ARGV[1]
if released then redis.call('HSET', KEYS[1], 'node', '') end
local exp = redis.call('HGET', KEYS[2], 'exp') or '0'
if exp == '0' then
  redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5])
  if released then linger(0) end
  return {0, epoch}
end
redis.call('HSET', KEYS[2], 'on', '')
if exp ~= '4294967295' then
  for i = 2, 5 do redis.call('PEXPIRE', KEYS[i], tonumber(exp) * 1000) end
  if released then linger(tonumber(exp) * 1000) end
end
return {tonumber(exp), epoch}`;

/**
 * Sets (options given) or deletes (ARGV[3] '') the route of one plain subscription of a persistent
 * session, logged for the replicas. The routes live in the `{p}` slot, apart from the session, so
 * they carry their own fence: the client's route hash keeps, per filter, the epoch of the connection
 * that routed it, and under the field '' (no filter is empty) the floor: the epoch of the claim that
 * last dropped the client's routes. A write below the floor — from a former owner that was paused
 * between storing a subscription and routing it — is refused.
 * KEYS: sessionRoutes, clientRoutes, routeLog. ARGV: clientId, filter, options, maxlen, epoch.
 * Returns the route-log entry written (a route set, or deleted), 0 (nothing to delete) or -1
 * (fenced out).
 */
export const SESSION_ROUTE = `
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[2], '') or '0') then return -1 end
-- Nor below the epoch that routed this filter last (a paused former owner after a resume elsewhere).
if tonumber(ARGV[5]) < tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '0') then return -1 end
local field = ARGV[1] .. '\\0' .. ARGV[2]
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[2], ARGV[2])
  if redis.call('HDEL', KEYS[1], field) == 0 then return 0 end
  return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'u', 'n', ARGV[1], 'f', ARGV[2])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[5])
redis.call('PERSIST', KEYS[2])
redis.call('HSET', KEYS[1], field, ARGV[3])
return redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 's', 'n', ARGV[1], 'f', ARGV[2], 'o', ARGV[3])`;

/**
 * Drops the routes of a session that ended, those routed at epoch ARGV[3] or before (a newer session
 * of the same id may have routed its own meanwhile), and raises the client's floor to ARGV[3] so no
 * older connection can route again. The floor outlives the routes for a day.
 * KEYS: sessionRoutes, clientRoutes, routeLog. ARGV: clientId, maxlen, epoch. Returns routes dropped.
 */
export const SESSION_ROUTES_DROP = `
local epoch = tonumber(ARGV[3])
local routes = redis.call('HGETALL', KEYS[2])
local n, kept = 0, 0
for i = 1, #routes, 2 do
  local f, e = routes[i], tonumber(routes[i + 1])
  if f ~= '' then
    if e <= epoch then
      redis.call('HDEL', KEYS[2], f)
      if redis.call('HDEL', KEYS[1], ARGV[1] .. '\\0' .. f) == 1 then
        redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', 'op', 'u', 'n', ARGV[1], 'f', f)
      end
      n = n + 1
    else
      kept = kept + 1
    end
  end
end
if epoch > tonumber(redis.call('HGET', KEYS[2], '') or '0') then redis.call('HSET', KEYS[2], '', epoch) end
if kept == 0 then redis.call('PEXPIRE', KEYS[2], 86400000) end
return n`;

/**
 * KEYS: inbox. ARGV: batch, sender, batch number. Appends a batch to a node's inbox and returns the
 * inbox length, or -1 when the inbox does not exist: the node stopped or was reaped, and an XADD must
 * not create its inbox again (NOMKSTREAM). No MAXLEN: an inbox is trimmed only by its reader, below
 * what it processed, so nothing acknowledged is trimmed unread.
 */
export const INBOX_ADD = `
if not redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'b', ARGV[1], 'f', ARGV[2], 's', ARGV[3]) then
  return -1
end
return redis.call('XLEN', KEYS[1])`;
