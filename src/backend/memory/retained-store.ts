/** Retained messages held in this process: a topic tree, so wildcard lookups never scan every topic. */

import type { Clock } from '../../clock.js';
import type { Message } from '../../message.js';
import { isExpired } from '../../message.js';
import { TopicTree } from '../../topics/index.js';
import type { RetainedStore } from '../types.js';

export class MemoryRetainedStore implements RetainedStore {
  private readonly tree = new TopicTree<Message>();

  constructor(private readonly clock: Clock) {}

  get size(): number {
    return this.tree.size;
  }

  set(message: Message): void {
    if (message.payload.length === 0) this.tree.delete(message.topic);
    else this.tree.set(message.topic, message);
  }

  get(topic: string): Message | undefined {
    const m = this.tree.get(topic);
    if (m !== undefined && isExpired(m, this.clock.now())) {
      this.tree.delete(topic);
      return undefined;
    }
    return m;
  }

  match(filter: string, visit: (message: Message) => void): void {
    const now = this.clock.now();
    this.tree.matchFilter(filter, (topic, m) => {
      if (isExpired(m, now)) this.tree.delete(topic);
      else visit(m);
    });
  }
}
