/**
 * The node's overload protection: the connection gate (open connections, CONNECT rate), the checks
 * of topics and retained messages, and the count of every limit hit by name (a bounded set, exported
 * as `shoal_rate_limited_total{limit}`: the broker's stats read `hits` as `rateLimited`). One per
 * node, shared by the listeners (PROXY protocol refusals) and the broker; per-client rates live in
 * ClientLimiter, and the bounded queue of CONNECT's claims in ClaimGate.
 */
import type { Clock } from '../clock.js';
import { ClaimGate } from './claim-gate.js';
import type { LimitOptions } from './options.js';
import { TokenBucket } from './token-bucket.js';

/** Every limit that can be hit: the `limit` label values of shoal_rate_limited_total. */
export const LIMIT_NAMES = [
  'max_connections',
  'connect_rate',
  'claim_queue',
  'connect_timeout',
  'message_rate',
  'byte_rate',
  'subscriptions',
  'wildcard_subscriptions',
  'topic_levels',
  'topic_length',
  'retained_messages',
  'retained_payload',
  'packet_size',
  'receive_maximum',
  'proxy_untrusted',
  'proxy_header',
  'user_connections',
  'user_messages',
] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

export class Limits {
  /** Hits per limit since start (every name present, so each series exists from the first scrape). */
  readonly hits: Record<string, number>;
  private readonly connects: TokenBucket | undefined;
  /** CONNECT's claims, admitted a bounded number at a time (limits.maxConcurrentClaims). */
  readonly claims: ClaimGate;

  constructor(
    readonly options: Readonly<LimitOptions>,
    readonly clock: Clock,
  ) {
    this.hits = Object.fromEntries(LIMIT_NAMES.map((n) => [n, 0]));
    const rate = options.connectRatePerSecond;
    this.connects = rate > 0 ? new TokenBucket(rate, options.connectBurst || rate, clock) : undefined;
    this.claims = new ClaimGate(
      {
        maxRunning: options.maxConcurrentClaims,
        maxWaiting: options.maxQueuedClaims,
        waitTimeoutMs: options.claimQueueTimeoutMs,
      },
      clock,
    );
  }

  hit(name: LimitName): void {
    this.hits[name]++;
  }

  /** A new network connection while `open` are open: false (and counted) over maxConnections. */
  admitConnection(open: number): boolean {
    const max = this.options.maxConnections;
    if (max === 0 || open < max) return true;
    this.hit('max_connections');
    return false;
  }

  /** A CONNECT: false (and counted) over the node's CONNECT rate. */
  admitConnect(): boolean {
    if (this.connects === undefined || this.connects.take(1)) return true;
    this.hit('connect_rate');
    return false;
  }

  /** The limit a topic name or filter breaks (counted), or undefined. Cheap for short topics. */
  topicLimit(topic: string): 'topic_levels' | 'topic_length' | undefined {
    const { maxTopicLengthBytes: maxBytes, maxTopicLevels: maxLevels } = this.options;
    // A UTF-16 unit is at most 3 UTF-8 bytes; levels are at most the characters.
    if (maxBytes > 0 && topic.length * 3 > maxBytes && Buffer.byteLength(topic) > maxBytes)
      return this.limited('topic_length');
    if (maxLevels > 0 && topic.length >= maxLevels && levels(topic) > maxLevels)
      return this.limited('topic_levels');
    return undefined;
  }

  /**
   * The limit a retained PUBLISH breaks (counted), or undefined. Deleting (an empty payload) and
   * replacing an existing retained topic are always allowed under the count limit.
   */
  retainLimit(
    store: { readonly size: number; get(topic: string): unknown },
    topic: string,
    payloadBytes: number,
  ): 'retained_messages' | 'retained_payload' | undefined {
    if (payloadBytes === 0) return undefined;
    const { maxRetainedPayloadBytes: maxBytes, maxRetainedMessages: maxCount } = this.options;
    if (maxBytes > 0 && payloadBytes > maxBytes) return this.limited('retained_payload');
    if (maxCount > 0 && store.size >= maxCount && store.get(topic) === undefined)
      return this.limited('retained_messages');
    return undefined;
  }

  /** Whether per-client rates are on (a ClientLimiter is needed). */
  get clientRates(): boolean {
    return this.options.clientMessagesPerSecond > 0 || this.options.clientBytesPerSecond > 0;
  }

  private limited<T extends LimitName>(name: T): T {
    this.hit(name);
    return name;
  }
}

function levels(topic: string): number {
  let n = 1;
  for (let i = 0; i < topic.length; i++) if (topic.charCodeAt(i) === 0x2f) n++;
  return n;
}
