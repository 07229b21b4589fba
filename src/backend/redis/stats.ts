/**
 * Stats sharing for the cluster-wide $SYS topics: every node stores its counters in one hash
 * (node -> JSON) and reads those of the live nodes back. A node's entry goes when it leaves or is
 * reaped (membership.ts).
 */
import type { ClusterNodeInfo } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

export interface StatsOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  liveNodes(): Promise<ClusterNodeInfo[]>;
}

export class RedisStats {
  constructor(private readonly o: StatsOptions) {}

  /** Stores this node's counters and returns those of every live node. */
  async share(mine: Record<string, number>): Promise<Record<string, Record<string, number>>> {
    await this.o.cmd.hset(this.o.keys.nodeStats, this.o.nodeId, JSON.stringify(mine));
    const [live, raw] = await Promise.all([this.o.liveNodes(), this.o.cmd.hgetall(this.o.keys.nodeStats)]);
    const out: Record<string, Record<string, number>> = {};
    for (const { nodeId } of live) if (raw[nodeId] !== undefined) out[nodeId] = JSON.parse(raw[nodeId]);
    return out;
  }

  /** This node leaves: its counters go. */
  async leave(): Promise<void> {
    await this.o.cmd.hdel(this.o.keys.nodeStats, this.o.nodeId);
  }
}
