/**
 * Inbound PUBLISH and the acknowledgement flows of both directions (MQTT 4.3): QoS 0, QoS 1
 * (PUBACK) and QoS 2 (PUBREC / PUBREL / PUBCOMP), topic aliases, Receive Maximum, Maximum QoS,
 * retain availability, payload format and publish authorization.
 */
import { isUtf8 } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { isThenable } from '../auth/types.js';
import { parseDelayed } from '../extensions/delayed.js';
import { forwardedProperties, type Message } from '../message.js';
import {
  ProtocolError,
  type PubackPacket,
  type PubcompPacket,
  type PublishPacket,
  type PubrecPacket,
  type PubrelPacket,
  ReasonCode,
} from '../protocol/index.js';
import { isValidTopicName } from '../topics/index.js';
import { afterAuthorization } from './authorize.js';
import type { Channel } from './channel.js';
import { count } from './counting.js';

export function handlePublish(ch: Channel, p: PublishPacket): void {
  const o = ch.ctx.options;
  // 0x9B: above the Maximum QoS of CONNACK, which the client must not send [MQTT-3.2.2-11] (MQTT 5 §3.3.1.2).
  if (p.qos > o.maximumQoS) throw new ProtocolError('QOS_NOT_SUPPORTED', `QoS ${p.qos} is above the maximum`);
  // 0x9A: RETAIN 1 after CONNACK said Retain Available 0 [MQTT-3.2.2-14] (MQTT 5 §3.3.1.3).
  if (p.retain && !o.retainAvailable)
    throw new ProtocolError('RETAIN_NOT_SUPPORTED', 'retain is not available');
  if (!ch.withinRate(p.payload.length)) return;
  const topic = resolveTopic(ch, p);
  const session = ch.session!;
  // A persistent session's re-send keeps its dedupe id and is routed again (publishAcknowledged).
  const resent = p.qos === 2 && session.awaitingRelease.has(p.packetId!);
  if (resent && session.dedupeOf(p.packetId!) === undefined) {
    // A re-sent QoS 2 PUBLISH already received: acknowledge again, deliver once [MQTT-4.3.3-9].
    ch.sendAck('pubrec', p.packetId!);
    return;
  }
  const counters = ch.ctx.counters;
  counters.messagesReceived++;
  counters.bytesReceived += p.payload.length;
  counters.receivedByQos[p.qos]++;
  counters.receivedBytesByQos[p.qos] += p.payload.length;
  if (p.qos === 2 && !resent && session.awaitingRelease.size >= o.receiveMaximum) {
    // [MQTT-3.3.4-7] more unacknowledged QoS 2 PUBLISH than our Receive Maximum. (Acknowledgements the
    // broker itself holds back are not the client's fault: queueAck stops reading instead.)
    throw new ProtocolError('RECEIVE_MAXIMUM_EXCEEDED', 'Receive Maximum exceeded');
  }
  const limited = publishLimit(ch, topic, p);
  if (limited !== 0) {
    completePublish(ch, p, topic, limited);
    return;
  }

  let reason = 0;
  // $delayed/<seconds>/<topic> (delayed publish): authorized and stored as a publish to <topic>.
  const delayed =
    ch.ctx.delayed === undefined ? undefined : parseDelayed(topic, ch.ctx.delayed.maxDelaySeconds);
  if (delayed === null) {
    completePublish(ch, p, topic, ReasonCode.TopicNameInvalid);
    return;
  }
  const target = delayed === undefined ? topic : delayed.topic;
  const delaySeconds = delayed?.seconds;
  if (ch.version === 5 && p.properties?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
    reason = ReasonCode.PayloadFormatInvalid;
  } else if (target.charCodeAt(0) === 0x24 /* $ */) {
    // Clients may not publish to $ topics (reserved for the broker, MQTT 4.7.2).
    reason = ReasonCode.NotAuthorized;
  } else {
    const allowed = ch.ctx.auth.authorizePublish(ch.clientId, ch.username, target, ch.permissions);
    if (isThenable(allowed)) {
      afterAuthorization(ch, [allowed], ([ok]) => {
        count(ch.ctx.counters.authz, ok ? 'publish allow' : 'publish deny');
        completePublish(ch, p, target, ok ? 0 : ReasonCode.NotAuthorized, delaySeconds);
      });
      return;
    }
    count(ch.ctx.counters.authz, allowed ? 'publish allow' : 'publish deny');
    if (!allowed) reason = ReasonCode.NotAuthorized;
  }
  completePublish(ch, p, target, reason, delaySeconds);
}

/**
 * Topic and retained-message limits (limits.*): 0x90 for a topic name too long or too deep, 0x97
 * (Quota exceeded) for a retained message over the retained count or size or a username over
 * limits.user.messagesPerMinute (counted last, so only messages passing the other limits count). Refused like an
 * unauthorized PUBLISH: MQTT 5 QoS 1/2 learn the reason from PUBACK / PUBREC; others are dropped.
 */
function publishLimit(ch: Channel, topic: string, p: PublishPacket): number {
  const limits = ch.ctx.limits;
  if (limits.topicLimit(topic) !== undefined) return ReasonCode.TopicNameInvalid;
  if (p.retain && limits.retainLimit(ch.ctx.retained, topic, p.payload.length) !== undefined)
    return ReasonCode.QuotaExceeded;
  if (!ch.withinUserQuota()) return ReasonCode.QuotaExceeded;
  return 0;
}

/** Routes an allowed PUBLISH, or refuses it with `reason`, acknowledging as its QoS asks. */
function completePublish(
  ch: Channel,
  p: PublishPacket,
  topic: string,
  reason: number,
  delaySeconds?: number,
): void {
  const session = ch.session!;
  if (reason === 0) {
    const message: Message = {
      // Authorized as sent; routed (and retained) under the rewritten topic (topicRewrite).
      topic: ch.ctx.rewrite === undefined ? topic : rewritten(ch, topic),
      payload: p.payload,
      qos: p.qos,
      retain: p.retain,
      properties: forwardedProperties(p.properties),
      origin: ch.clientId,
    };
    const expiry = p.properties?.messageExpiryInterval;
    if (expiry !== undefined) message.expiresAt = ch.ctx.clock.now() + expiry * 1000;
    if (delaySeconds !== undefined) {
      // A delayed message's expiry counts from when it is published.
      if (message.expiresAt !== undefined) message.expiresAt += delaySeconds * 1000;
      publishDelayed(ch, p, message, delaySeconds);
      return;
    }
    if (p.qos === 0) {
      ch.ctx.publish(message);
      return;
    }
    publishAcknowledged(ch, message, p.packetId!);
    return;
  }
  if (reason === ReasonCode.NotAuthorized) {
    ch.ctx.logger.debug({
      event: 'auth.publish_denied',
      clientId: ch.clientId,
      username: ch.username,
      topic,
    });
    if (ch.version < 5 && ch.ctx.auth.v3DeniedPublish === 'disconnect') {
      // [MQTT-3.3.5-2] 3.x: acknowledge as usual or close the connection; this broker is told to close.
      ch.disconnect(ReasonCode.NotAuthorized, 'not authorized');
      return;
    }
  }
  if (p.qos === 0) {
    // MQTT 5 3.3.2.3.2: with no acknowledgement to carry 0x99, the DISCONNECT carries it.
    if (reason === ReasonCode.PayloadFormatInvalid) {
      throw new ProtocolError('PAYLOAD_FORMAT_INVALID', 'payload is not UTF-8 though marked so');
    }
    return;
  }
  // Refused: 3.x has no negative acknowledgement, so the message is dropped and acknowledged as usual.
  const ack = ch.queueAck(p.qos === 1 ? 'puback' : 'pubrec', p.packetId!);
  if (ch.version === 5) ack.reasonCode = reason;
  else if (p.qos === 2) session.awaitRelease(p.packetId!)?.catch(() => undefined);
  ch.ackReady(ack);
}

/**
 * QoS 1/2: PUBACK / PUBREC go out once the broker says the message is safe (at once on a single
 * node; after Redis accepted it in a cluster), in the order the PUBLISH packets came in.
 *
 * A QoS 2 message of a persistent session gets a dedupe id, stored with its packet id before it is
 * routed. If its routing fails part way, or this node dies before PUBREC, the client's re-send (on
 * any node) is routed again under the same id: the targets that took it skip it, the others get it
 * once. (Routing first and storing the id beside it, a re-send after a death in between went to
 * every target again.)
 */
function publishAcknowledged(ch: Channel, message: Message, packetId: number): void {
  const session = ch.session!;
  const qos2 = message.qos === 2;
  let stored: Promise<void> | undefined;
  if (qos2) {
    const again = session.dedupeOf(packetId);
    if (again !== undefined) message.dedupe = again;
    else {
      if (session.durable !== undefined) message.dedupe = mintDedupe();
      // [MQTT-4.3.3-8] from now on a re-send is a duplicate (a durable session stores the id before PUBREC).
      stored = session.awaitRelease(packetId, message.dedupe);
    }
  }
  const ack = ch.queueAck(qos2 ? 'pubrec' : 'puback', packetId); // [MQTT-4.3.2-4] [MQTT-4.3.3-8]
  let reached = -1;
  let early: { err: Error | undefined } | undefined;
  const settle = (err: Error | undefined) => {
    if (err !== undefined) {
      ch.ctx.logger.warn({ event: 'publish.not_stored', clientId: ch.clientId, err: err.message });
      // 3.x re-sends a message with a dedupe id under the same packet id: keep it for that.
      if (qos2 && (ch.version === 5 || message.dedupe === undefined)) session.release(packetId);
      if (ch.version < 5) {
        // No way to say "not stored" in 3.x: close without acknowledging, the client re-sends.
        ch.disconnect(ReasonCode.UnspecifiedError, 'message could not be stored');
        return;
      }
      ack.reasonCode = ReasonCode.UnspecifiedError;
    } else if (reached === 0 && ch.version === 5) {
      ack.reasonCode = ReasonCode.NoMatchingSubscribers;
    }
    ch.ackReady(ack);
  };
  let settled = false;
  const done = (err?: Error) => {
    if (settled) return;
    settled = true;
    settle(err);
  };
  const route = () => {
    reached = ch.ctx.publish(message, (err) => {
      if (reached < 0) early = { err };
      else done(err);
    });
    if (early !== undefined) done(early.err);
  };
  if (stored === undefined) {
    route();
    return;
  }
  // Stored first (a durable session), routed then: the payload may be a view of a socket buffer
  // reused meanwhile.
  message.payload = Buffer.from(message.payload);
  stored.then(route, done);
}

/** Dedupe ids: this process's run and a count, unique in the cluster. */
const RUN = randomBytes(6).toString('base64url');
let minted = 0;
function mintDedupe(): string {
  return `${RUN}.${(++minted).toString(36)}`;
}

/** Topic Alias (MQTT 5 3.3.2.3.4): a non-empty topic sets the alias, an empty one uses it. */
function resolveTopic(ch: Channel, p: PublishPacket): string {
  const alias = p.properties?.topicAlias;
  let topic = p.topic;
  if (alias !== undefined) {
    if (alias === 0 || alias > ch.ctx.options.topicAliasMaximum) {
      throw new ProtocolError('TOPIC_ALIAS_INVALID', `topic alias ${alias} is out of range`); // [MQTT-3.3.2-9]
    }
    if (topic.length === 0) {
      const known = ch.inboundAliases?.get(alias);
      if (known === undefined) throw new ProtocolError('PROTOCOL_ERROR', `unknown topic alias ${alias}`);
      topic = known;
    } else {
      if (!isValidTopicName(topic)) throw new ProtocolError('TOPIC_NAME_INVALID', 'invalid topic name');
      ch.inboundAliases ??= new Map();
      ch.inboundAliases.set(alias, topic);
    }
    return topic;
  }
  // [MQTT-3.3.2-1] [MQTT-3.3.2-2] a topic name without wildcards
  if (topic.length === 0) throw new ProtocolError('PROTOCOL_ERROR', 'empty topic without a topic alias');
  if (!isValidTopicName(topic)) throw new ProtocolError('TOPIC_NAME_INVALID', 'invalid topic name');
  return topic;
}

export function handlePuback(ch: Channel, p: PubackPacket): void {
  const entry = ch.session!.inflight.get(p.packetId);
  if (entry?.qos !== 1) return;
  ch.outboundAcknowledged(entry.message);
  ch.session!.complete(p.packetId);
}

export function handlePubrec(ch: Channel, p: PubrecPacket): void {
  const session = ch.session!;
  const entry = session.inflight.get(p.packetId);
  if (entry === undefined || entry.qos !== 2) {
    // v5: a PUBREC for an unknown id still gets a PUBREL, with 0x92 Packet Identifier not found (MQTT 5 §3.6.2.1).
    if (ch.version === 5) ch.sendAck('pubrel', p.packetId, ReasonCode.PacketIdentifierNotFound);
    return;
  }
  if ((p.reasonCode ?? 0) >= 0x80) {
    ch.outboundAcknowledged(entry.message);
    session.complete(p.packetId); // the receiver refused: acknowledged, never sent again [MQTT-4.4.0-2]
    return;
  }
  session.received(p.packetId);
  const stored = session.durable?.releasing(p.packetId);
  if (stored === undefined) {
    ch.sendPubrel(p.packetId); // [MQTT-4.3.3-4]
    return;
  }
  // A session the cluster keeps: PUBREL once the new phase is stored (else the next node re-sends
  // the PUBLISH, and a client that delivered on PUBREL would deliver it twice). Fenced out: the
  // connection is being taken over, and the next owner sends PUBREL.
  const id = p.packetId;
  stored.then(
    () => {
      if (ch.state === 'connected') ch.sendPubrel(id);
    },
    (err: Error) => ch.storeFailed(err),
  );
}

export function handlePubrel(ch: Channel, p: PubrelPacket): void {
  const session = ch.session!;
  const id = p.packetId;
  const released = session.awaitingRelease.delete(id);
  session.dedupeIds?.delete(id);
  // [MQTT-4.3.3-11] PUBCOMP with the same id; 0x92 when we hold no state for it (v5).
  const code = released || ch.version < 5 ? 0 : ReasonCode.PacketIdentifierNotFound;
  const stored = released ? session.durable?.awaitRelease(id, false) : undefined;
  if (stored === undefined) {
    ch.sendAck('pubcomp', id, code);
    return;
  }
  // A session the cluster keeps: PUBCOMP once the id is released there too. Else the next node
  // would take the client's next QoS 2 PUBLISH with this id for a re-send and not route it.
  stored.then(
    () => {
      if (ch.state === 'connected') ch.sendAck('pubcomp', id, code);
    },
    (err: Error) => ch.storeFailed(err),
  );
}

export function handlePubcomp(ch: Channel, p: PubcompPacket): void {
  const entry = ch.session!.inflight.get(p.packetId);
  if (entry?.qos !== 2 || entry.phase !== 'pubrel') return;
  ch.outboundAcknowledged(entry.message);
  ch.session!.complete(p.packetId);
}

/** A PUBLISH topic after topicRewrite, counted when a rule changed it. */
function rewritten(ch: Channel, topic: string): string {
  const out = ch.ctx.rewrite!.publish(topic);
  if (out !== topic) count(ch.ctx.counters.rewrites, 'publish');
  return out;
}

/**
 * A `$delayed/<seconds>/<topic>` PUBLISH: stored for later (delayed.ts); PUBACK / PUBREC once the
 * store holds it, MQTT 5 0x97 when it is full (3.x: acknowledged, dropped: counted as delayed_full).
 */
function publishDelayed(ch: Channel, p: PublishPacket, message: Message, seconds: number): void {
  const delayed = ch.ctx.delayed!;
  const full = () => {
    const d = ch.ctx.counters.dropped;
    d.delayed_full = (d.delayed_full ?? 0) + 1;
  };
  if (p.qos === 0) {
    delayed.add(message, seconds).then(
      (r) => {
        if (r === 'full') full();
      },
      (err: Error) =>
        ch.ctx.logger.warn({ event: 'delayed.store_failed', clientId: ch.clientId, err: err.message }),
    );
    return;
  }
  const qos2 = p.qos === 2;
  // [MQTT-4.3.3-8] a QoS 2 re-send of it is a duplicate from here on (not stored twice).
  if (qos2) void ch.session!.awaitRelease(p.packetId!, undefined)?.catch(() => undefined);
  const ack = ch.queueAck(qos2 ? 'pubrec' : 'puback', p.packetId!);
  delayed.add(message, seconds).then(
    (r) => {
      if (r === 'full') {
        full();
        if (ch.version === 5) ack.reasonCode = ReasonCode.QuotaExceeded;
      }
      ch.ackReady(ack);
    },
    (err: Error) => {
      ch.ctx.logger.warn({ event: 'delayed.store_failed', clientId: ch.clientId, err: err.message });
      if (ch.version < 5) {
        ch.disconnect(ReasonCode.UnspecifiedError, 'message could not be stored');
        return;
      }
      ack.reasonCode = ReasonCode.UnspecifiedError;
      ch.ackReady(ack);
    },
  );
}
