/**
 * Inbound PUBLISH and the acknowledgement flows of both directions (MQTT 4.3): QoS 0, QoS 1
 * (PUBACK) and QoS 2 (PUBREC / PUBREL / PUBCOMP), topic aliases, Receive Maximum, Maximum QoS,
 * retain availability, payload format and publish authorization.
 */
import { isUtf8 } from 'node:buffer';
import { forwardedProperties, type Message } from '../broker/message.js';
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
import type { Channel } from './channel.js';

export function handlePublish(ch: Channel, p: PublishPacket): void {
  const o = ch.ctx.options;
  if (p.qos > o.maximumQoS) throw new ProtocolError('QOS_NOT_SUPPORTED', `QoS ${p.qos} is above the maximum`); // [MQTT-3.3.1-?] 0x9B
  if (p.retain && !o.retainAvailable)
    throw new ProtocolError('RETAIN_NOT_SUPPORTED', 'retain is not available'); // [MQTT-3.3.1-?] 0x9A
  const topic = resolveTopic(ch, p);
  const session = ch.session!;
  if (p.qos === 2 && session.awaitingRelease.has(p.packetId!)) {
    // A re-sent QoS 2 PUBLISH already received: acknowledge again, deliver once [MQTT-4.3.3-9].
    ch.sendAck('pubrec', p.packetId!);
    return;
  }
  const counters = ch.ctx.counters;
  counters.messagesReceived++;
  counters.bytesReceived += p.payload.length;
  if (p.qos > 0 && session.awaitingRelease.size >= o.receiveMaximum) {
    // [MQTT-3.3.4-9] more unacknowledged QoS > 0 PUBLISH than our Receive Maximum.
    throw new ProtocolError('RECEIVE_MAXIMUM_EXCEEDED', 'Receive Maximum exceeded');
  }

  let reason = 0;
  if (ch.version === 5 && p.properties?.payloadFormatIndicator === 1 && !isUtf8(p.payload)) {
    reason = ReasonCode.PayloadFormatInvalid;
  } else if (
    topic.charCodeAt(0) === 0x24 /* $ */ ||
    !ch.ctx.auth.authorizePublish(ch.clientId, ch.username, topic)
  ) {
    // Clients may not publish to $ topics (reserved for the broker, MQTT 4.7.2).
    reason = ReasonCode.NotAuthorized;
  }

  if (reason === 0) {
    const message: Message = {
      topic,
      payload: p.payload,
      qos: p.qos,
      retain: p.retain,
      properties: forwardedProperties(p.properties),
      origin: ch.clientId,
    };
    const expiry = p.properties?.messageExpiryInterval;
    if (expiry !== undefined) message.expiresAt = ch.ctx.clock.now() + expiry * 1000;
    const reached = ch.ctx.publish(message);
    if (reached === 0 && ch.version === 5) reason = ReasonCode.NoMatchingSubscribers;
  } else if (p.qos === 0 && reason === ReasonCode.PayloadFormatInvalid) {
    // MQTT 5 3.3.2.3.2: with no acknowledgement to carry 0x99, the DISCONNECT carries it.
    throw new ProtocolError('PAYLOAD_FORMAT_INVALID', 'payload is not UTF-8 though marked so');
  }

  // 3.x has no negative acknowledgement: the message is dropped and acknowledged as usual.
  const ackReason = ch.version === 5 ? reason : 0;
  if (p.qos === 1)
    ch.sendAck('puback', p.packetId!, ackReason); // [MQTT-4.3.2-4]
  else if (p.qos === 2) {
    if (ackReason < 0x80) session.awaitingRelease.add(p.packetId!); // [MQTT-4.3.3-8]
    ch.sendAck('pubrec', p.packetId!, ackReason);
  }
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
      const known = ch.inboundAliases.get(alias);
      if (known === undefined) throw new ProtocolError('PROTOCOL_ERROR', `unknown topic alias ${alias}`);
      topic = known;
    } else {
      if (!isValidTopicName(topic)) throw new ProtocolError('TOPIC_NAME_INVALID', 'invalid topic name');
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
  if (entry?.qos === 1) ch.session!.complete(p.packetId);
}

export function handlePubrec(ch: Channel, p: PubrecPacket): void {
  const session = ch.session!;
  const entry = session.inflight.get(p.packetId);
  if (entry === undefined || entry.qos !== 2) {
    // v5: a PUBREC for an unknown id still gets a PUBREL, with 0x92 [MQTT-4.3.3-?].
    if (ch.version === 5) ch.sendAck('pubrel', p.packetId, ReasonCode.PacketIdentifierNotFound);
    return;
  }
  if ((p.reasonCode ?? 0) >= 0x80) {
    session.complete(p.packetId); // the receiver refused: the exchange ends [MQTT-4.3.3-?]
    return;
  }
  session.received(p.packetId);
  ch.sendPubrel(p.packetId); // [MQTT-4.3.3-4]
}

export function handlePubrel(ch: Channel, p: PubrelPacket): void {
  const released = ch.session!.awaitingRelease.delete(p.packetId);
  // [MQTT-4.3.3-11] PUBCOMP with the same id; 0x92 when we hold no state for it (v5).
  ch.sendAck('pubcomp', p.packetId, released || ch.version < 5 ? 0 : ReasonCode.PacketIdentifierNotFound);
}

export function handlePubcomp(ch: Channel, p: PubcompPacket): void {
  const entry = ch.session!.inflight.get(p.packetId);
  if (entry?.qos === 2 && entry.phase === 'pubrel') ch.session!.complete(p.packetId);
}
