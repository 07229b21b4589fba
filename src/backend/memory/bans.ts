/**
 * The bans of a single node, in memory (lost on restart, like the rest of an in-memory node's
 * state), and its flapping counters: one fixed window per client id.
 */
import type { Clock } from '../../clock.js';
import type { Ban, BanStore } from '../types.js';

export class MemoryBanStore implements BanStore {
  private readonly bans = new Map<string, Ban>();
  private readonly listeners: (() => void)[] = [];
  private readonly connects = new Map<string, { window: number; count: number }>();

  constructor(private readonly clock: Clock) {}

  current(): readonly Ban[] {
    const now = this.clock.now();
    const out: Ban[] = [];
    for (const [key, ban] of this.bans) {
      if (ban.until !== null && ban.until <= now) this.bans.delete(key);
      else out.push(ban);
    }
    return out;
  }

  async add(ban: Ban): Promise<void> {
    this.bans.set(`${ban.kind}:${ban.value}`, ban);
    this.changed();
  }

  async remove(kind: Ban['kind'], value: string): Promise<boolean> {
    const removed = this.bans.delete(`${kind}:${value}`);
    if (removed) this.changed();
    return removed;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async countConnect(clientId: string, windowMs: number): Promise<number> {
    const window = Math.floor(this.clock.now() / windowMs);
    const c = this.connects.get(clientId);
    if (c === undefined || c.window !== window) {
      // Bounded: a window's counters go when the next window starts counting.
      if (this.connects.size > 100_000) this.connects.clear();
      this.connects.set(clientId, { window, count: 1 });
      return 1;
    }
    return ++c.count;
  }

  async start(): Promise<void> {}

  stop(): void {}

  private changed(): void {
    for (const l of this.listeners) l();
  }
}
