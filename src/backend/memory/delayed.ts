/**
 * Delayed messages of a single node, in memory (a restart forgets them, as the rest of an
 * in-memory node's state): kept sorted by due time, leased while their publish is under way.
 */
import type { Clock } from '../../clock.js';
import type { Message } from '../../message.js';
import type { DelayedMessage, DelayedStore } from '../types.js';

export class MemoryDelayedStore implements DelayedStore {
  /** By due time (then id), ascending. */
  private queue: DelayedMessage[] = [];
  private readonly leased = new Map<string, { entry: DelayedMessage; until: number }>();
  private nextId = 0;

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.queue.length + this.leased.size;
  }

  async add(message: Message, delayMs: number, max: number): Promise<string | false> {
    if (this.size >= max) return false;
    const entry: DelayedMessage = { id: `${++this.nextId}`, message, dueAt: this.clock.now() + delayMs };
    // Binary search for the place after every entry due no later.
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.queue[mid].dueAt <= entry.dueAt) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, entry);
    return entry.id;
  }

  async take(limit: number, leaseMs: number): Promise<DelayedMessage[]> {
    const now = this.clock.now();
    // Leases that ran out: due again (their publish never finished).
    for (const [id, l] of this.leased)
      if (l.until <= now) {
        this.leased.delete(id);
        this.queue.unshift(l.entry);
      }
    let n = 0;
    while (n < this.queue.length && n < limit && this.queue[n].dueAt <= now) n++;
    const taken = this.queue.splice(0, n);
    for (const entry of taken) this.leased.set(entry.id, { entry, until: now + leaseMs });
    return taken;
  }

  async done(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.leased.delete(id);
  }

  async list(limit: number, after?: string): Promise<DelayedMessage[]> {
    const start = after === undefined ? 0 : this.queue.findIndex((e) => e.id === after) + 1;
    return this.queue.slice(start, start + limit);
  }

  async cancel(id: string): Promise<boolean> {
    const i = this.queue.findIndex((e) => e.id === id);
    if (i < 0) return false;
    this.queue.splice(i, 1);
    return true;
  }
}
