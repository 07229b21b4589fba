/**
 * The data that crosses layers (a leaf: it imports only the codec): an application message inside
 * the broker — what a PUBLISH (or a Will) carries once the per-hop details (packet id, DUP, topic
 * alias, subscription identifiers) are stripped — and a delivery of it to one session, with the
 * subscription options that shaped it.
 */
import type { EncodedPublish, Properties, QoS } from './protocol/index.js';

/**
 * How long, and for how many messages, a target (a persistent session's queue, a node's local
 * delivery) remembers the dedupe ids it took: a publisher's re-send within this window is not
 * delivered twice; a later one may be.
 */
export const DEDUPE_WINDOW_MS = 600_000;
export const DEDUPE_MAX = 50_000;

export interface Message {
  topic: string;
  /** Owned bytes (copied out of the socket buffer when the message is kept). */
  payload: Buffer;
  qos: QoS;
  retain: boolean;
  /** Only the properties that travel with the message (MQTT 5 §3.3.2.3): see forwardedProperties. */
  properties?: Properties;
  /** Absolute expiry time in clock milliseconds, from Message Expiry Interval. */
  expiresAt?: number;
  /** Client id of the publisher, for No Local; undefined for broker-originated messages. */
  origin?: string;
  /**
   * A QoS 2 message of a persistent publisher session: an id it keeps when routed again after its
   * publisher re-sent it (a partial fan-out failure, or its node died before PUBREC). Every target
   * that already took it skips it, so the re-send reaches only those that missed it (exactly once).
   */
  dedupe?: string;
  /**
   * Encode-once cache for fan-out: PUBLISH headers without a packet id, by (version class, QoS,
   * retain). Filled by channels; the payload stays shared.
   */
  encoded?: (EncodedPublish | undefined)[];
}

/**
 * The properties a broker forwards unchanged to subscribers: Payload Format Indicator [MQTT-3.3.2-4],
 * Content Type [MQTT-3.3.2-20], Response Topic [MQTT-3.3.2-15], Correlation Data [MQTT-3.3.2-16] and
 * User Properties [MQTT-3.3.2-17]. Topic Alias and Subscription Identifiers are per hop; Message
 * Expiry Interval is rewritten to the remaining time [MQTT-3.3.2-6].
 */
export function forwardedProperties(props: Properties | undefined): Properties | undefined {
  if (props === undefined) return undefined;
  const { payloadFormatIndicator, contentType, responseTopic, correlationData, userProperties } = props;
  if (
    payloadFormatIndicator === undefined &&
    contentType === undefined &&
    responseTopic === undefined &&
    correlationData === undefined &&
    userProperties === undefined
  ) {
    return undefined;
  }
  const out: Properties = {};
  if (payloadFormatIndicator !== undefined) out.payloadFormatIndicator = payloadFormatIndicator;
  if (contentType !== undefined) out.contentType = contentType;
  if (responseTopic !== undefined) out.responseTopic = responseTopic;
  if (correlationData !== undefined) out.correlationData = Buffer.from(correlationData);
  if (userProperties !== undefined) out.userProperties = userProperties;
  return out;
}

/** Remaining Message Expiry Interval in whole seconds (rounded up), or undefined when it has none. */
export function remainingExpirySeconds(message: Message, now: number): number | undefined {
  if (message.expiresAt === undefined) return undefined;
  return Math.max(0, Math.ceil((message.expiresAt - now) / 1000));
}

export function isExpired(message: Message, now: number): boolean {
  return message.expiresAt !== undefined && message.expiresAt <= now;
}

/**
 * Makes the message own its payload before it is kept (queued, in flight): a small view must not pin
 * the large socket read buffer it points into. Done once per message, shared by every holder.
 */
export function ownPayload(message: Message): void {
  const p = message.payload;
  if (p.buffer.byteLength > 2 * p.length + 1024) message.payload = Buffer.from(p);
}

export interface SubscriptionOptions {
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
  subscriptionId?: number;
}

/** One message on its way to this session, with the per-subscriber delivery decisions made. */
export interface Delivery {
  message: Message;
  qos: QoS;
  retain: boolean;
  subscriptionIds?: number[];
}
