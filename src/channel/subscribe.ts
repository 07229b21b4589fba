/**
 * SUBSCRIBE and UNSUBSCRIBE (MQTT 3.8 / 3.10): per-filter reason codes, shared subscriptions,
 * subscription identifiers, and retained messages sent on subscribe per Retain Handling.
 */
import {
  encode,
  ProtocolError,
  type QoS,
  ReasonCode,
  SubackFailure,
  type SubscribePacket,
  type UnsubscribePacket,
} from '../protocol/index.js';
import type { SubscriptionOptions } from '../session/session.js';
import { parseSubscription } from '../topics/index.js';
import type { Channel } from './channel.js';

interface Granted {
  filter: string;
  options: SubscriptionOptions;
  existed: boolean;
}

export function handleSubscribe(ch: Channel, p: SubscribePacket): void {
  const o = ch.ctx.options;
  const v5 = ch.version === 5;
  const subscriptionId = p.properties?.subscriptionIdentifiers?.[0];
  if (subscriptionId !== undefined && !o.subscriptionIdentifiersAvailable) {
    // MQTT 5 3.2.2.3.12: a Protocol Error answered with DISCONNECT 0xA1.
    throw new ProtocolError(
      'SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED',
      'subscription identifiers are not supported',
    );
  }
  const session = ch.session!;
  const codes: number[] = [];
  const granted: Granted[] = [];
  for (const s of p.subscriptions) {
    const parsed = parseSubscription(s.topic);
    let code: number;
    if (parsed === null) code = v5 ? ReasonCode.TopicFilterInvalid : SubackFailure;
    else if (parsed.group !== null && !o.sharedSubscriptionAvailable)
      code = v5 ? ReasonCode.SharedSubscriptionsNotSupported : SubackFailure;
    else if (!o.wildcardSubscriptionAvailable && /[+#]/.test(parsed.filter))
      code = v5 ? ReasonCode.WildcardSubscriptionsNotSupported : SubackFailure;
    else if (!ch.ctx.auth.authorizeSubscribe(ch.clientId, ch.username, s.topic))
      code = v5 ? ReasonCode.NotAuthorized : SubackFailure;
    else {
      // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
      if (parsed.group !== null && s.noLocal)
        throw new ProtocolError('PROTOCOL_ERROR', 'No Local on a shared subscription');
      const qos = Math.min(s.qos, o.maximumQoS) as QoS; // [MQTT-3.9.3-?] granted QoS may be lower
      const options: SubscriptionOptions = {
        qos,
        noLocal: s.noLocal,
        retainAsPublished: s.retainAsPublished,
        retainHandling: s.retainHandling,
      };
      if (subscriptionId !== undefined) options.subscriptionId = subscriptionId;
      const existed = session.subscriptions.has(s.topic);
      ch.ctx.subscribe(session, s.topic, parsed.filter, parsed.group, options); // [MQTT-3.8.4-3] replaces
      if (parsed.group === null) granted.push({ filter: parsed.filter, options, existed });
      code = qos;
    }
    codes.push(code);
  }
  // [MQTT-3.8.4-1] SUBACK with the same packet id, [MQTT-3.8.4-6] one code per filter in order.
  ch.out.write(encode({ type: 'suback', packetId: p.packetId, reasonCodes: codes }, ch.version));
  for (const g of granted) sendRetained(ch, g);
}

/** Retained messages for a new subscription (never for shared ones, MQTT 5 4.8.2). */
function sendRetained(ch: Channel, g: Granted): void {
  const rh = g.options.retainHandling;
  if (rh === 2 || (rh === 1 && g.existed)) return; // [MQTT-3.8.4-4]
  const session = ch.session!;
  const ids = g.options.subscriptionId === undefined ? undefined : [g.options.subscriptionId];
  ch.ctx.retained.match(g.filter, (m) => {
    // [MQTT-3.3.1-8] retained messages sent for a new subscription carry RETAIN 1.
    session.deliver({
      message: m,
      qos: Math.min(m.qos, g.options.qos) as QoS,
      retain: true,
      subscriptionIds: ids,
    });
  });
}

export function handleUnsubscribe(ch: Channel, p: UnsubscribePacket): void {
  const session = ch.session!;
  const codes: number[] = [];
  for (const raw of p.topics) {
    const parsed = parseSubscription(raw);
    if (parsed === null) {
      codes.push(ReasonCode.TopicFilterInvalid);
      continue;
    }
    const existed = ch.ctx.unsubscribe(session, raw);
    codes.push(existed ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted);
  }
  // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed.
  ch.out.write(
    encode(
      { type: 'unsuback', packetId: p.packetId, reasonCodes: ch.version === 5 ? codes : undefined },
      ch.version,
    ),
  );
}
