/**
 * Membership of one node: its heartbeat in the node set, who is alive, and reaping dead nodes (one
 * survivor at a time, under a lock): their routes, wills, sessions and inbox. See docs/cluster.md.
 */
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterNodeInfo } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { NODE_REMOVE } from './scripts.js';

export interface MembershipOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  heartbeatMs: number;
  livenessMs: number;
  logMaxLen: number;
  /** False while Redis is away: a list of dead nodes read before may come from before a failover. */
  connected(): boolean;
  /** Schedules the wills a dead node left; returns how many. */
  reapWills(node: string): Promise<number>;
  /** Takes a dead node's sessions offline; returns how many. */
  reapSessions(node: string): Promise<number>;
}

export class RedisMembership {
  /**
   * No reaping before this time. After Redis comes back every live node needs a moment to heartbeat
   * again: after a Sentinel failover the new master holds heartbeats as old as the failover, and a
   * node reaped while alive loses its inbox (messages already acknowledged to publishers).
   */
  private reapAfter = 0;

  constructor(private readonly o: MembershipOptions) {}

  /**
   * Records this node as alive. Once joined, finding itself gone from the node set means the others
   * reaped it (it was paused, or cut from Redis, past the liveness timeout): its routes were dropped,
   * its sessions orphaned (its writes to them are refused), its clients' wills published. Its clients
   * must claim again, and its routes are announced again. Resolves true in that case.
   */
  async heartbeat(joined: boolean): Promise<boolean> {
    const added = await this.o.cmd.zadd(this.o.keys.nodes, this.o.clock.now(), this.o.nodeId);
    if (Number(added) !== 1 || !joined) return false;
    this.o.logger.warn({ event: 'cluster.was_reaped', nodeId: this.o.nodeId });
    return true;
  }

  /** Redis came back: no reaping for a liveness period, while the others heartbeat again. */
  holdReaping(): void {
    this.reapAfter = this.o.clock.now() + this.o.livenessMs;
  }

  /** False when `node` is dead (silent past the liveness timeout): nothing to wait for from it. */
  async mayAnswer(node: string): Promise<boolean> {
    const seen = await this.o.cmd.zscore(this.o.keys.nodes, node);
    return seen !== null && Number(seen) >= this.o.clock.now() - this.o.livenessMs;
  }

  /** A node silent past the liveness timeout is dead: one survivor (holding a lock) removes its routes. */
  async reapDead(): Promise<void> {
    const { cmd, keys, clock, nodeId } = this.o;
    if (clock.now() < this.reapAfter) return;
    const deadline = clock.now() - this.o.livenessMs;
    const dead = await cmd.zrangebyscore(keys.nodes, '-inf', deadline);
    for (const node of dead) {
      if (node === nodeId) continue;
      // Redis went away meanwhile: the list may come from before a failover; let the others heartbeat.
      if (!this.o.connected() || clock.now() < this.reapAfter) return;
      const locked = await cmd.set(keys.reaper(node), nodeId, 'PX', this.o.livenessMs, 'NX');
      if (locked !== 'OK') continue;
      if (!this.o.connected() || clock.now() < this.reapAfter) return;
      // Routes first, checked against the heartbeat inside the script: a node that came back is kept.
      const routes = await this.removeNode(node, String(deadline));
      if (routes < 0) continue;
      // Wills before sessions: orphaning a session takes ownership from the dead node's connection.
      const wills = await this.o.reapWills(node);
      const sessions = await this.o.reapSessions(node);
      await cmd.del(keys.inbox(node));
      await cmd.hdel(keys.nodeStats, node);
      this.o.logger.warn({ event: 'cluster.node_reaped', node, routes, wills, sessions, by: nodeId });
    }
  }

  /** Removes a node's routes; `deadline`: only if its last heartbeat is older (a reaper's check). */
  async removeNode(node: string, deadline = '+inf'): Promise<number> {
    const k = this.o.keys;
    return (await this.o.cmd.eval(
      NODE_REMOVE,
      4,
      k.routes,
      k.nodeRoutes(node),
      k.routeLog,
      k.nodes,
      node,
      this.o.logMaxLen,
      deadline,
    )) as number;
  }

  async liveNodes(): Promise<ClusterNodeInfo[]> {
    const now = this.o.clock.now();
    const raw = await this.o.cmd.zrangebyscore(
      this.o.keys.nodes,
      now - this.o.livenessMs,
      '+inf',
      'WITHSCORES',
    );
    const out: ClusterNodeInfo[] = [];
    for (let i = 0; i < raw.length; i += 2) out.push({ nodeId: raw[i], lastSeenMs: Number(raw[i + 1]) });
    return out;
  }
}
