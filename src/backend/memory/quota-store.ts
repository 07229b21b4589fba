/** Per-username quotas of a single node: exact counts in this process (QuotaStore). */

import type { Clock } from '../../clock.js';
import type { QuotaStore } from '../types.js';

/** The fixed window of limits.user.messagesPerMinute. */
export const QUOTA_WINDOW_MS = 60_000;

export class MemoryQuotaStore implements QuotaStore {
  private readonly connections = new Map<string, Set<string>>();
  private readonly messages = new Map<string, { window: number; count: number }>();

  constructor(private readonly clock: Clock) {}

  acquireConnection(user: string, connectionId: string, max: number): Promise<boolean> {
    let ids = this.connections.get(user);
    if (ids === undefined) {
      ids = new Set();
      this.connections.set(user, ids);
    }
    if (!ids.has(connectionId) && ids.size >= max) return Promise.resolve(false);
    ids.add(connectionId);
    return Promise.resolve(true);
  }

  releaseConnection(user: string, connectionId: string): void {
    const ids = this.connections.get(user);
    if (ids === undefined) return;
    ids.delete(connectionId);
    if (ids.size === 0) this.connections.delete(user);
  }

  takeMessage(user: string, perMinute: number): boolean {
    const window = Math.floor(this.clock.now() / QUOTA_WINDOW_MS);
    let entry = this.messages.get(user);
    if (entry === undefined || entry.window !== window) {
      if (this.messages.size > 10_000) this.prune(window);
      entry = { window, count: 0 };
      this.messages.set(user, entry);
    }
    if (entry.count >= perMinute) return false;
    entry.count++;
    return true;
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  start(): void {}

  stop(): Promise<void> {
    return Promise.resolve();
  }

  /** Drops the counts of past windows (bounded memory with many users). */
  private prune(window: number): void {
    for (const [user, e] of this.messages) if (e.window !== window) this.messages.delete(user);
  }
}
