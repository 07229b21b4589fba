-- Stores (or, with an empty message, deletes) a retained message, logged to the retained log in the
-- same step. The writer (node run) remembers the numbers of its writes applied lately: one applied
-- before is a write ioredis re-sent after a reconnect cut off its answer (possibly after a newer write
-- by another node): ignored. Writes not applied yet are applied in whatever order they land (on Redis
-- Cluster ioredis retries each script a failover failed on its own schedule). A number below the
-- RETAINED_SEQ_WINDOW kept is taken for an old re-send. The numbers are kept RETAINED_SEQ_KEEP_MS past
-- the writer's last write. A message of at most RETAINED_LOG_INLINE_MAX bytes travels in the log
-- (op s), a larger one as its topic only (op h). A message with an expiry is indexed by its expiry
-- time on Redis' clock (retained-sweep.lua); the index entry changes with the message, so it always
-- names the current one.
-- KEYS: retained, retainedLog, retainedSeq (the writer's), retainedExpiry.
-- ARGV: topic, encoded message ('' deletes), maxlen, the writer's sequence number, ms until the
-- message expires ('' never).
-- Returns 1 (applied) or 0 (a re-send: ignored).
--! include redis-now.lua
local seq = tonumber(ARGV[4])
if redis.call('ZSCORE', KEYS[3], ARGV[4]) then return 0 end
local kept = redis.call('ZCARD', KEYS[3])
if kept >= {{RETAINED_SEQ_WINDOW}} and seq < tonumber(redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')[2]) then
  return 0
end
redis.call('ZADD', KEYS[3], seq, ARGV[4])
if kept + 1 > {{RETAINED_SEQ_WINDOW}} * 2 then
  redis.call('ZREMRANGEBYRANK', KEYS[3], 0, -{{RETAINED_SEQ_WINDOW}} - 1)
end
redis.call('PEXPIRE', KEYS[3], {{RETAINED_SEQ_KEEP_MS}})
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'op', 'd', 't', ARGV[1], 'm', '')
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
  if #ARGV[2] <= {{RETAINED_LOG_INLINE_MAX}} then
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
return 1
