/**
 * The dedupe ids (Message.dedupe) of the messages this node delivered to its local subscribers
 * lately: a message routed again after its publisher re-sent it reaches them once. Bounded by the
 * window and a count, oldest forgotten first.
 */
import { DEDUPE_MAX, DEDUPE_WINDOW_MS } from '../message.js';

export class RecentIds {
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly now: () => number,
    private readonly windowMs = DEDUPE_WINDOW_MS,
    private readonly max = DEDUPE_MAX,
  ) {}

  /** Records `id`; false when it was recorded within the window already. */
  add(id: string): boolean {
    const now = this.now();
    for (const [old, at] of this.seen) {
      if (at > now - this.windowMs && this.seen.size < this.max) break;
      this.seen.delete(old);
    }
    if (this.seen.has(id)) return false;
    this.seen.set(id, now);
    return true;
  }
}
