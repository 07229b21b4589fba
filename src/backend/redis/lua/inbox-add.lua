-- Appends a batch to a node's inbox. No MAXLEN: an inbox is trimmed only by its reader, below what it
-- processed, so nothing acknowledged is trimmed unread.
-- KEYS: inbox.
-- ARGV: batch, sender, batch number.
-- Returns the inbox length, or -1 when the inbox does not exist: the node stopped or was reaped, and
-- an XADD must not create its inbox again (NOMKSTREAM).
if not redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'b', ARGV[1], 'f', ARGV[2], 's', ARGV[3]) then
  return -1
end
return redis.call('XLEN', KEYS[1])
