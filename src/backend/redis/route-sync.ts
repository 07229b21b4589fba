/**
 * "SUBACK means routed everywhere" (guarantee 8): every node says how far it applied the route log
 * (a hash node -> last applied entry id, plus a pub/sub nudge), and a node that wrote a route waits
 * until every live node has applied the entry before the client gets its SUBACK. Bounded by the
 * liveness timeout: a node that cannot answer in that time is being reaped (or cut from Redis, and
 * then serves no publishes routed through Redis meanwhile either); the wait then ends, logged.
 * See docs/cluster.md "Routes".
 */
import type { Clock, TimerHandle } from '../../clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterNodeInfo } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';

/** While anyone waits, positions are read again this often (nudges lost in a blip are made up). */
const POLL_MS = 50;

interface Waiter {
  id: string;
  deadline: number;
  resolve: () => void;
}

export interface RouteSyncOptions {
  cmd: RedisClient;
  keys: Keys;
  nodeId: string;
  clock: Clock;
  logger: Logger;
  livenessMs: number;
  sharded: boolean;
  liveNodes(): Promise<ClusterNodeInfo[]>;
}

export class RouteSync {
  private waiters: Waiter[] = [];
  private timer: TimerHandle | undefined;
  private checking = false;
  private again = false;
  /** This node's applied position, written once per loop turn. */
  private applied = '0-0';
  private writeScheduled = false;
  private stopped = false;

  constructor(private readonly o: RouteSyncOptions) {}

  /** The pub/sub channel of the nudges (every node listens to it). */
  get channel(): string {
    return this.o.keys.routeAppliedChannel;
  }

  /** This node applied the route log up to `id` (its log reader, or a snapshot resync). */
  appliedUpTo(id: string): void {
    if (compareIds(id, this.applied) <= 0) return;
    this.applied = id;
    if (this.writeScheduled) return;
    this.writeScheduled = true;
    setImmediate(() => {
      this.writeScheduled = false;
      const k = this.o.keys;
      const body = `${this.o.nodeId}\n${this.applied}`;
      this.o.cmd
        .hset(k.routeApplied, this.o.nodeId, this.applied)
        .then(() =>
          this.o.sharded ? this.o.cmd.spublish(this.channel, body) : this.o.cmd.publish(this.channel, body),
        )
        .catch(() => undefined); // read again by the waiters' polling once Redis is back
    });
  }

  /** A nudge from a node that applied more: the waiters look again. */
  nudged(): void {
    if (this.waiters.length > 0) this.check();
  }

  /** Resolves once every live node applied the route log up to `id` (or the liveness timeout passed). */
  confirmed(id: string): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      this.waiters.push({ id, deadline: this.o.clock.now() + this.o.livenessMs, resolve });
      this.timer ??= this.o.clock.setInterval(() => this.check(), POLL_MS);
      this.check();
    });
  }

  /** This node leaves: its applied position goes. */
  async leave(): Promise<void> {
    await this.o.cmd.hdel(this.o.keys.routeApplied, this.o.nodeId);
  }

  stop(): void {
    this.stopped = true;
    this.timer?.cancel();
    this.timer = undefined;
    for (const w of this.waiters.splice(0)) w.resolve();
  }

  /** Reads every live node's position (one round trip for all waiters) and releases who can go. */
  private check(): void {
    if (this.checking) {
      this.again = true;
      return;
    }
    this.checking = true;
    Promise.all([this.o.liveNodes(), this.o.cmd.hgetall(this.o.keys.routeApplied)])
      .then(([live, positions]) => this.release(live, positions))
      .catch(() => this.release(undefined, {}))
      .finally(() => {
        this.checking = false;
        if (this.again && this.waiters.length > 0) {
          this.again = false;
          this.check();
        }
      });
  }

  private release(live: ClusterNodeInfo[] | undefined, positions: Record<string, string>): void {
    const now = this.o.clock.now();
    const waiting: Waiter[] = [];
    for (const w of this.waiters) {
      const behind =
        live === undefined
          ? ['(Redis unreachable)']
          : live
              .map((n) => n.nodeId)
              .filter(
                (n) =>
                  compareIds(positions[n] ?? '0-0', w.id) < 0 &&
                  !(n === this.o.nodeId && compareIds(this.applied, w.id) >= 0),
              );
      if (behind.length === 0) w.resolve();
      else if (now >= w.deadline) {
        this.o.logger.warn({ event: 'cluster.route_unconfirmed', entry: w.id, nodes: behind });
        w.resolve();
      } else waiting.push(w);
    }
    this.waiters = waiting;
    if (waiting.length === 0) {
      this.timer?.cancel();
      this.timer = undefined;
    }
  }
}

/** Orders two stream entry ids (`ms-seq`). */
export function compareIds(a: string, b: string): number {
  const da = a.indexOf('-');
  const db = b.indexOf('-');
  const ma = Number(a.slice(0, da));
  const mb = Number(b.slice(0, db));
  if (ma !== mb) return ma < mb ? -1 : 1;
  const sa = Number(a.slice(da + 1));
  const sb = Number(b.slice(db + 1));
  return sa === sb ? 0 : sa < sb ? -1 : 1;
}
