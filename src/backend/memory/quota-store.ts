/** Per-username quotas of a single node: exact counts in this process (QuotaStore). */

import type { Clock } from '../../clock.js';
import type { QuotaStore } from '../types.js';

/** The fixed window of limits.user.messagesPerMinute. */
export const QUOTA_WINDOW_MS = 60_000;

export class MemoryQuotaStore implements QuotaStore {
  /** Per username: connection id (client id) -> connections holding it (a takeover overlaps briefly). */
  private readonly connections = new Map<string, Map<string, number>>();
  private readonly messages = new Map<string, { window: number; count: number }>();

  constructor(private readonly clock: Clock) {}

  acquireConnection(user: string, connectionId: string, max: number): Promise<boolean> {
    let ids = this.connections.get(user);
    if (ids === undefined) {
      ids = new Map();
      this.connections.set(user, ids);
    }
    const refs = ids.get(connectionId) ?? 0;
    if (refs === 0 && ids.size >= max) return Promise.resolve(false);
    ids.set(connectionId, refs + 1);
    return Promise.resolve(true);
  }

  releaseConnection(user: string, connectionId: string): void {
    const ids = this.connections.get(user);
    const refs = ids?.get(connectionId);
    if (ids === undefined || refs === undefined) return;
    if (refs > 1) ids.set(connectionId, refs - 1);
    else ids.delete(connectionId);
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
