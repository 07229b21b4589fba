/**
 * Membership of one node: its heartbeat in the node set, who is alive, and reaping dead nodes (one
 * survivor at a time, under a lock): their routes, wills, sessions and inbox. Liveness is judged on
 * Redis' clock (the scripts read TIME), and every reaping step is fenced by the reaped node's
 * incarnation, so a node that came back keeps what it has. See docs/cluster.md "Membership".
 */
import { randomBytes } from 'node:crypto';
import type { Clock } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterNodeInfo } from '../types.js';
import { masterOf, type RedisClient, subscribers } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

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
  /** Schedules the wills a dead node's run left (fence: see session-orphan.lua); returns how many. */
  reapWills(node: string, fence: string): Promise<number>;
  /** Hands the shares a dead node had not processed to live members of their groups (its inbox). */
  handOver(node: string): Promise<unknown>;
  /** Takes a dead node's sessions of that run offline; returns how many. */
  reapSessions(node: string, fence: string): Promise<number>;
}

interface NodeEntry {
  node: string;
  lastSeenMs: number;
  ageMs: number;
  incarnation: string;
}

/** How long a takeover waits for a node without subscriber to resubscribe (a pub/sub blip). */
const RESUBSCRIBE_GRACE_MS = 100;

export class RedisMembership {
  /** This node's run as the node set knows it; a new one once it finds itself reaped. */
  incarnation = randomBytes(6).toString('hex');
  /**
   * No reaping before this time. After Redis (or the node set's shard) comes back every live node
   * needs a moment to heartbeat again: after a failover the new master may hold heartbeats as old
   * as the failover, and a node reaped while alive loses its inbox (messages already acknowledged).
   */
  private reapAfter = 0;
  /** The last heartbeat failed: heartbeats in Redis may be stale, no reaping until one succeeds. */
  private beatFailed = false;
  /** The master serving the node set on Redis Cluster, as last seen: a change is a failover. */
  private master: string | undefined;
  /** Nodes (`node\nincarnation`) seen without a control subscriber at the last reaping round. */
  private unsubscribed = new Set<string>();

  constructor(private readonly o: MembershipOptions) {}

  /**
   * Records this node as alive. Once joined, finding its incarnation gone from the node set means the
   * others reaped it (it was paused, or cut from Redis, past the liveness timeout): its routes were
   * dropped, its sessions orphaned (its writes to them are refused), its clients' wills published.
   * It joins again as a new incarnation (the reaper's steps still under way leave that one alone);
   * its clients must claim again and its routes are announced again. Resolves true in that case.
   */
  async heartbeat(joined: boolean): Promise<boolean> {
    const started = this.o.clock.now();
    try {
      const beat = await this.beat(joined ? 'beat' : 'join');
      const reaped = beat === 0;
      if (reaped) {
        this.incarnation = randomBytes(6).toString('hex');
        await this.beat('join');
        this.o.logger.warn({
          event: 'cluster.was_reaped',
          nodeId: this.o.nodeId,
          incarnation: this.incarnation,
        });
      }
      // A failed or slow heartbeat (a failover under way), or a new master for the node set: the
      // others' heartbeats may be as stale as ours were; they get a liveness period to catch up.
      const master = masterOf(this.o.cmd, this.o.keys.nodes);
      const moved = this.master !== undefined && master !== this.master;
      if (this.beatFailed || moved || this.o.clock.now() - started > this.o.heartbeatMs) this.holdReaping();
      this.master = master;
      this.beatFailed = false;
      return reaped;
    } catch (err) {
      this.beatFailed = true;
      throw err;
    }
  }

  private async beat(mode: 'join' | 'beat'): Promise<number> {
    const { cmd, keys, nodeId } = this.o;
    const done = Number(
      await scripts.nodeHeartbeat.run(cmd, [keys.nodes, keys.nodeRuns], nodeId, this.incarnation, mode),
    );
    // The inbox names its reader, so a reaper of an earlier run does not drop it.
    if (mode === 'join') await cmd.set(keys.inboxRun(nodeId), this.incarnation);
    return done;
  }

  /** Redis came back: no reaping for a liveness period, while the others heartbeat again. */
  holdReaping(): void {
    this.reapAfter = this.o.clock.now() + this.o.livenessMs;
  }

  /**
   * False when `node` is dead: silent past the liveness timeout, or crashed — its control channel
   * has no subscriber (Redis closed the dead process's connections) and gets none back within a
   * short grace (a pub/sub connection that blipped resubscribes). A takeover need not wait for it;
   * a node that was only cut off is fenced out by the epoch anyway.
   */
  async mayAnswer(node: string): Promise<boolean> {
    const entry = (await this.scan()).find((e) => e.node === node);
    if (entry === undefined || entry.ageMs >= this.o.livenessMs) return false;
    if ((await this.controlSubscribers(node)) > 0) return true;
    await new Promise<void>((resolve) => this.o.clock.setTimeout(resolve, RESUBSCRIBE_GRACE_MS));
    return (await this.controlSubscribers(node)) > 0;
  }

  private controlSubscribers(node: string): Promise<number> {
    return subscribers(this.o.cmd, this.o.keys.control(node));
  }

  /**
   * A node silent past the liveness timeout is dead; so is one that missed two heartbeats and had no
   * control subscriber at two rounds in a row (crashed: Redis saw its connections close). One
   * survivor (holding a lock) reaps it, each step fenced by the incarnation judged dead.
   */
  async reapDead(): Promise<void> {
    const { cmd, keys, nodeId } = this.o;
    if (this.held()) return;
    const crashAgeMs = 2 * this.o.heartbeatMs;
    const unsubscribed = new Set<string>();
    const asked = this.o.clock.now();
    const nodes = await this.scan();
    // A slow answer (the node set's shard failing over, Redis away) may hold heartbeats as stale as
    // the outage: the others get a liveness period to heartbeat again.
    if (this.o.clock.now() - asked > this.o.heartbeatMs) {
      this.holdReaping();
      return;
    }
    for (const e of nodes) {
      if (e.node === nodeId || e.ageMs < Math.min(crashAgeMs, this.o.livenessMs)) continue;
      let minAgeMs = this.o.livenessMs;
      if (e.ageMs < this.o.livenessMs) {
        const key = `${e.node}\n${e.incarnation}`;
        if ((await this.controlSubscribers(e.node)) > 0) continue;
        unsubscribed.add(key);
        if (!this.unsubscribed.has(key)) continue;
        minAgeMs = crashAgeMs;
      }
      // Redis went away meanwhile: the list may come from before a failover; let the others heartbeat.
      if (this.held()) return;
      const locked = await cmd.set(keys.reaper(e.node), nodeId, 'PX', this.o.livenessMs, 'NX');
      if (locked !== 'OK' || this.held()) continue;
      // Out of the node set first, checked against the incarnation and heartbeat inside the script:
      // a node that came back is kept. From here on the node knows it was reaped once it heartbeats.
      if ((await this.removeNode(e.node, e.incarnation, minAgeMs)) < 0) continue;
      await this.finishReaping(e.node, e.incarnation, { crashed: minAgeMs < this.o.livenessMs });
    }
    this.unsubscribed = unsubscribed;
    // A reaper that died between removing a node and the rest: a survivor finishes (once its lock lapsed).
    const pending = await cmd.hgetall(keys.reaping);
    for (const [node, incarnation] of Object.entries(pending)) {
      if (this.held()) return;
      if ((await cmd.set(keys.reaper(node), nodeId, 'PX', this.o.livenessMs, 'NX')) !== 'OK') continue;
      await this.finishReaping(node, incarnation, { resumed: true });
    }
  }

  /** The reaping steps after the node's removal, each fenced by its incarnation (all re-runnable). */
  private async finishReaping(
    node: string,
    incarnation: string,
    report: Record<string, unknown>,
  ): Promise<void> {
    const { cmd, keys } = this.o;
    const fence = `=${incarnation}`;
    // Its routes, in every partition, unless a later run of it routed there since.
    const routes = await this.dropRoutes(node, incarnation);
    // Wills before sessions: orphaning a session takes ownership from the dead node's connection.
    const wills = await this.o.reapWills(node, fence);
    const sessions = await this.o.reapSessions(node, fence);
    // Shares it had not processed go to live members of their groups before its inbox goes.
    await this.o.handOver(node);
    await scripts.inboxDrop.run(cmd, [keys.inbox(node), keys.inboxRun(node)], incarnation);
    await cmd.hdel(keys.nodeStats, node);
    await cmd.hdel(keys.reaping, node);
    this.o.logger.warn({
      event: 'cluster.node_reaped',
      node,
      incarnation,
      ...report,
      routes,
      wills,
      sessions,
      by: this.o.nodeId,
    });
  }

  private held(): boolean {
    return !this.o.connected() || this.beatFailed || this.o.clock.now() < this.reapAfter;
  }

  /**
   * Removes a node's entry in the node set. A reaper passes the incarnation it judged dead and the
   * heartbeat age that judgement needs (its routes go in finishReaping); '' (the node itself):
   * unconditionally, with its routes. Returns -1 when the node was kept.
   */
  async removeNode(node: string, incarnation = '', minAgeMs = 0): Promise<number> {
    const k = this.o.keys;
    const removed = await scripts.nodeRemove.run(
      this.o.cmd,
      [k.nodes, k.nodeRuns, k.reaping],
      node,
      incarnation,
      minAgeMs,
    );
    if (incarnation === '') await this.dropRoutes(node, '');
    return removed;
  }

  /**
   * Drops a node's routes in every partition, side by side (one short script each): those of run
   * `incarnation` only, or all of them (''). Returns how many went.
   */
  private async dropRoutes(node: string, incarnation: string): Promise<number> {
    const k = this.o.keys;
    const counts = await Promise.all(
      k
        .allPartitions()
        .map((p) =>
          scripts.routeNodeDrop.run(
            this.o.cmd,
            [k.nodeRoutes(node, p), k.routeLog(p), k.routeRuns(p)],
            node,
            this.o.logMaxLen,
            incarnation,
          ),
        ),
    );
    return counts.reduce((sum, n) => sum + Math.max(0, Number(n)), 0);
  }

  /** This node leaves: the inbox and its reader's name go too. */
  async leave(): Promise<void> {
    await this.removeNode(this.o.nodeId);
    await this.o.cmd.del(this.o.keys.inbox(this.o.nodeId), this.o.keys.inboxRun(this.o.nodeId));
  }

  async liveNodes(): Promise<ClusterNodeInfo[]> {
    return (await this.scan())
      .filter((e) => e.ageMs < this.o.livenessMs)
      .map((e) => ({ nodeId: e.node, lastSeenMs: e.lastSeenMs }));
  }

  /** The node set with each node's heartbeat age, both on Redis' clock. */
  private async scan(): Promise<NodeEntry[]> {
    const k = this.o.keys;
    const raw = await scripts.nodesScan.run(this.o.cmd, [k.nodes, k.nodeRuns]);
    const now = Number(raw[0]);
    const out: NodeEntry[] = [];
    for (let i = 1; i + 2 < raw.length; i += 3) {
      const lastSeenMs = Number(raw[i + 1]);
      out.push({
        node: String(raw[i]),
        lastSeenMs,
        ageMs: now - lastSeenMs,
        incarnation: String(raw[i + 2]),
      });
    }
    return out;
  }
}
