/**
 * Per-username quotas across the cluster (QuotaStore on Redis). Connections: a ZSET per username of
 * client ids with an expiry, taken at CONNECT by one Lua call and renewed by every flush, so the
 * slots of a dead node lapse after `connectionTtlMs`. Messages: counted per username in this process
 * and flushed every `flushMs` as deltas into a fixed one-minute window key (INCRBY + PEXPIRE), whose
 * reply is the cluster total; a node admits a user's PUBLISH while that total plus its own unflushed
 * count is under the quota. The hot path is a Map lookup; the cluster can overshoot by what the other
 * nodes admit within one flush interval (docs/security.md).
 */

import type { Clock, TimerHandle } from '../../clock.js';
import { QUOTA_WINDOW_MS } from '../memory/quota-store.js';
import type { QuotaStore } from '../types.js';
import type { RedisClient } from './connect.js';
import type { Keys } from './keys.js';
import { scripts } from './scripts.js';

export interface RedisQuotaStoreOptions {
  client: RedisClient;
  keys: Keys;
  clock: Clock;
  /** Flush (and connection renewal) interval; the slack of the message quota. */
  flushMs?: number;
  /** How long a connection slot outlives the last renewal (a dead node's slots lapse after it). */
  connectionTtlMs?: number;
  /** Quit the client on stop (the store made it). */
  ownsClient?: boolean;
  /** A flush failed (Redis unreachable): counts stay local and are pushed by the next flush. */
  onError?: (err: unknown) => void;
}

/** Longest stop() waits for the last flush. */
const STOP_TIMEOUT_MS = 2000;

interface MessageCount {
  window: number;
  /** Cluster total of the window at the last flush (this node's flushed counts included). */
  known: number;
  /** Counted here since the last flush. */
  pending: number;
}

export class RedisQuotaStore implements QuotaStore {
  private readonly client: RedisClient;
  private readonly keys: Keys;
  private readonly clock: Clock;
  private readonly flushMs: number;
  private readonly ttlMs: number;
  /** Per username: client id -> local connections holding its slot (a takeover overlaps briefly). */
  private readonly connections = new Map<string, Map<string, number>>();
  private readonly messages = new Map<string, MessageCount>();
  private timer: TimerHandle | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly o: RedisQuotaStoreOptions) {
    this.client = o.client;
    this.keys = o.keys;
    this.clock = o.clock;
    this.flushMs = o.flushMs ?? 1000;
    this.ttlMs = o.connectionTtlMs ?? 15_000;
  }

  async acquireConnection(user: string, connectionId: string, max: number): Promise<boolean> {
    const now = this.clock.now();
    const ok = await scripts.quotaConnAcquire.run(
      this.client,
      [this.keys.userConnections(user)],
      connectionId,
      max,
      now,
      now + this.ttlMs,
      this.ttlMs,
    );
    if (Number(ok) !== 1) return false;
    let ids = this.connections.get(user);
    if (ids === undefined) {
      ids = new Map();
      this.connections.set(user, ids);
    }
    ids.set(connectionId, (ids.get(connectionId) ?? 0) + 1);
    return true;
  }

  releaseConnection(user: string, connectionId: string): void {
    const ids = this.connections.get(user);
    const refs = ids?.get(connectionId);
    if (ids === undefined || refs === undefined) return;
    if (refs > 1) {
      ids.set(connectionId, refs - 1);
      return;
    }
    ids.delete(connectionId);
    if (ids.size === 0) this.connections.delete(user);
    // A takeover on another node may have re-taken this id: its next renewal adds it back.
    this.client.zrem(this.keys.userConnections(user), connectionId).catch((err) => this.o.onError?.(err));
  }

  takeMessage(user: string, perMinute: number): boolean {
    const window = Math.floor(this.clock.now() / QUOTA_WINDOW_MS);
    let entry = this.messages.get(user);
    if (entry === undefined || entry.window !== window) {
      entry = { window, known: 0, pending: 0 };
      this.messages.set(user, entry);
    }
    if (entry.known + entry.pending >= perMinute) return false;
    entry.pending++;
    return true;
  }

  flush(): Promise<void> {
    // One flush at a time: a slow Redis must not pile up overlapping flushes.
    this.flushing ??= this.flushNow().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  start(): void {
    this.timer ??= this.clock.setInterval(() => {
      this.flush().catch((err) => this.o.onError?.(err));
    }, this.flushMs);
  }

  /** Pushes the last counts and frees this node's slots; bounded (a missing Redis must not hang a shutdown). */
  async stop(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    const last: Promise<unknown>[] = [this.flush().catch(() => undefined)];
    for (const [user, ids] of this.connections) {
      last.push(this.client.zrem(this.keys.userConnections(user), ...ids.keys()).catch(() => undefined));
    }
    this.connections.clear();
    let timeout: TimerHandle | undefined;
    await Promise.race([
      Promise.all(last),
      new Promise((resolve) => {
        timeout = this.clock.setTimeout(() => resolve(undefined), STOP_TIMEOUT_MS);
      }),
    ]);
    timeout?.cancel();
    if (this.o.ownsClient) this.client.disconnect();
  }

  private async flushNow(): Promise<void> {
    const window = Math.floor(this.clock.now() / QUOTA_WINDOW_MS);
    const work: Promise<unknown>[] = [];
    // Every call is issued in this turn: ioredis auto-pipelining sends them as one write.
    for (const [user, entry] of this.messages) {
      if (entry.window !== window) {
        this.messages.delete(user);
        if (entry.window < window - 1 || entry.pending === 0) continue;
      }
      if (entry.pending === 0) continue;
      const delta = entry.pending;
      entry.pending = 0;
      work.push(
        scripts.quotaMsgAdd
          .run(this.client, [this.keys.userMessages(user, entry.window)], delta, QUOTA_WINDOW_MS * 2)
          .then(
            (total) => {
              entry.known = Math.max(entry.known, Number(total));
            },
            (err: unknown) => {
              entry.pending += delta; // pushed again by the next flush
              throw err;
            },
          ),
      );
    }
    const expiresAt = this.clock.now() + this.ttlMs;
    for (const [user, ids] of this.connections) {
      work.push(
        scripts.quotaConnRenew.run(
          this.client,
          [this.keys.userConnections(user)],
          expiresAt,
          this.ttlMs,
          ...ids.keys(),
        ),
      );
    }
    const results = await Promise.allSettled(work);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }
}
