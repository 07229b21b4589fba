/**
 * Delayed publish (#15), EMQX's syntax: a PUBLISH to `$delayed/<seconds>/<topic>` is stored and
 * published to `<topic>` when `<seconds>` have passed, as the same publisher's message (its QoS,
 * retain flag and properties; its Message Expiry Interval counts from then). It is authorized as a
 * publish to `<topic>`; its PUBACK / PUBREC says the store holds it (MQTT 5: 0x97 Quota exceeded
 * when `delayed.maxMessages` are stored; 0x90 for a `$delayed` topic that is not
 * `$delayed/<0..delayed.maxDelaySeconds>/<valid topic>`). In a cluster the schedule is in Redis and
 * any live node fires each message once (DelayedStore: taken by one node, leased until published),
 * also when the node that stored it is gone.
 */
import type { DelayedMessage, DelayedStore } from '../backend/types.js';
import type { Clock } from '../clock.js';
import type { Message } from '../message.js';
import type { Logger } from '../observability/logger.js';
import { isValidTopicName } from '../topics/index.js';

export interface DelayedOptions {
  readonly enabled: boolean;
  readonly maxMessages: number;
  readonly maxDelaySeconds: number;
}

/** How often each node looks for due messages, and how many it takes at once. */
const POLL_MS = 100;
const TAKE = 500;
/** A node publishing taken messages for longer than this is taken for dead: another takes them. */
const LEASE_MS = 30_000;

const PREFIX = '$delayed/';

/**
 * `$delayed/<seconds>/<topic>`: the delay and the topic; null for a `$delayed/` topic that is not
 * valid (or over `maxDelaySeconds`); undefined for any other topic.
 */
export function parseDelayed(
  topic: string,
  maxDelaySeconds: number,
): { seconds: number; topic: string } | null | undefined {
  if (!topic.startsWith(PREFIX)) return undefined;
  const slash = topic.indexOf('/', PREFIX.length);
  if (slash < 0) return null;
  const digits = topic.slice(PREFIX.length, slash);
  const target = topic.slice(slash + 1);
  if (!/^\d{1,10}$/.test(digits)) return null;
  const seconds = Number(digits);
  if (seconds > maxDelaySeconds || !isValidTopicName(target) || target.startsWith('$')) return null;
  return { seconds, topic: target };
}

export interface DelayedPublisherOptions {
  store: DelayedStore;
  clock: Clock;
  logger: Logger;
  options: DelayedOptions;
  /** Routes a message like a client's PUBLISH; `accepted` once the cluster holds it (QoS >= 1). */
  publish(message: Message, accepted?: (err?: Error) => void): number;
}

export class DelayedPublisher {
  private timer: NodeJS.Timeout | undefined;
  private polling = false;
  /** Delayed messages this node published (shoal_delayed_published_total). */
  published = 0;

  constructor(private readonly o: DelayedPublisherOptions) {}

  get maxDelaySeconds(): number {
    return this.o.options.maxDelaySeconds;
  }

  /** Messages stored (cluster-wide; as of this node's last look). */
  get size(): number {
    return this.o.store.size;
  }

  /** Stores a message to publish in `seconds`; 'full' at delayed.maxMessages. */
  async add(message: Message, seconds: number): Promise<'stored' | 'full'> {
    const stored = await this.o.store.add(message, seconds * 1000, this.o.options.maxMessages);
    return stored === false ? 'full' : 'stored';
  }

  list(limit: number, after?: string): Promise<DelayedMessage[]> {
    return this.o.store.list(limit, after);
  }

  cancel(id: string): Promise<boolean> {
    return this.o.store.cancel(id);
  }

  /**
   * Looks for due messages every POLL_MS of real time: the look is I/O (Redis), like reading a
   * stream, and due times are judged by the store's clock; a test's fake clock that jumps hours
   * ahead must not run a look for every 100 ms it skipped.
   */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Takes the due messages and publishes them; says so once the cluster holds each. */
  private async poll(): Promise<void> {
    if (this.polling) return;
    this.polling = true;
    try {
      for (;;) {
        const due = await this.o.store.take(TAKE, LEASE_MS);
        if (due.length === 0) return;
        await Promise.all(due.map((d) => this.fire(d)));
        await this.o.store.done(due.map((d) => d.id));
        this.published += due.length;
        if (due.length < TAKE) return;
      }
    } catch (err) {
      // Redis away: the leases run out and the messages are taken again (here or elsewhere).
      this.o.logger.warn({ event: 'delayed.poll_failed', err: String(err) });
    } finally {
      this.polling = false;
    }
  }

  private fire(d: DelayedMessage): Promise<void> {
    // Its expiry was set to count from its due time when it was stored (the channel's part).
    const m = d.message;
    return new Promise((resolve) => {
      if (m.qos === 0) {
        this.o.publish(m);
        resolve();
        return;
      }
      this.o.publish(m, (err) => {
        if (err !== undefined)
          this.o.logger.warn({ event: 'delayed.publish_failed', topic: m.topic, err: err.message });
        resolve();
      });
    });
  }
}
