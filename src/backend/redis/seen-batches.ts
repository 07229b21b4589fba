/**
 * Which inbox batches a receiver has delivered, per sender (node and run), so a batch ioredis
 * re-sent after a reconnect cut off its first answer is skipped. Batches are numbered by their
 * sender but need not arrive in order: on Redis Cluster a shard failover makes ioredis retry each
 * failed command on its own schedule, so batch n+1 can land before batch n. Each number is
 * remembered individually within a window below the highest one seen; older numbers are
 * delivered (a possible duplicate, never a loss).
 */
export const SEEN_WINDOW = 4_096;

interface SenderSeen {
  max: number;
  seen: Set<number>;
}

export class SeenBatches {
  private readonly senders = new Map<string, SenderSeen>();

  /** True if batch `n` of `sender` was seen before (a re-send); records it otherwise. */
  resent(sender: string, n: number): boolean {
    let s = this.senders.get(sender);
    if (s === undefined) {
      s = { max: n, seen: new Set([n]) };
      this.senders.set(sender, s);
      return false;
    }
    if (s.seen.has(n)) return true;
    s.seen.add(n);
    if (n > s.max) {
      s.max = n;
      if (s.seen.size > SEEN_WINDOW) {
        for (const k of s.seen) if (k <= s.max - SEEN_WINDOW) s.seen.delete(k);
      }
    }
    return false;
  }
}
