/**
 * SUBSCRIBE and UNSUBSCRIBE (MQTT 3.8 / 3.10): per-filter reason codes, shared subscriptions,
 * subscription identifiers, and retained messages sent on subscribe per Retain Handling.
 */
import { isThenable } from '../auth/types.js';
import { autoSubscriptions } from '../extensions/auto-subscribe.js';
import type { SubscriptionOptions } from '../message.js';
import {
  encode,
  ProtocolError,
  type QoS,
  ReasonCode,
  SubackFailure,
  type SubscribePacket,
  type UnsubscribePacket,
} from '../protocol/index.js';
import { parseSubscription } from '../topics/index.js';
import { afterAuthorization } from './authorize.js';
import type { Channel } from './channel.js';
import { count } from './counting.js';

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
  // Per filter: a refusal code, or the authorizer's answer (a promise when it answers asynchronously).
  const verdicts: Array<number | boolean | PromiseLike<boolean>> = [];
  const pending: PromiseLike<boolean>[] = [];
  for (const s of p.subscriptions) {
    const parsed = parseSubscription(s.topic);
    if (parsed === null) verdicts.push(v5 ? ReasonCode.TopicFilterInvalid : SubackFailure);
    else if (parsed.group !== null && !o.sharedSubscriptionAvailable)
      verdicts.push(v5 ? ReasonCode.SharedSubscriptionsNotSupported : SubackFailure);
    else if (!o.wildcardSubscriptionAvailable && /[+#]/.test(parsed.filter))
      verdicts.push(v5 ? ReasonCode.WildcardSubscriptionsNotSupported : SubackFailure);
    else if (ch.ctx.limits.topicLimit(parsed.filter) !== undefined)
      // Deeper or longer than limits.maxTopicLevels / maxTopicLengthBytes allow.
      verdicts.push(v5 ? ReasonCode.TopicFilterInvalid : SubackFailure);
    else {
      // [MQTT-3.8.3-4] No Local on a shared subscription is a protocol error.
      if (parsed.group !== null && s.noLocal)
        throw new ProtocolError('PROTOCOL_ERROR', 'No Local on a shared subscription');
      const answer = ch.ctx.auth.authorizeSubscribe(ch.clientId, ch.username, s.topic, ch.permissions);
      if (isThenable(answer)) pending.push(answer);
      verdicts.push(answer);
    }
  }
  if (pending.length === 0) {
    completeSubscribe(ch, p, verdicts as Array<number | boolean>);
    return;
  }
  afterAuthorization(ch, pending, (answers) => {
    let next = 0;
    const settled = verdicts.map((v) => (isThenable(v) ? answers[next++] : v));
    completeSubscribe(ch, p, settled);
  });
}

/**
 * The subscriptions `rules` (autoSubscribe) give a client that just got its CONNACK: made like its
 * own SUBSCRIBE, without the authorizer and without a SUBACK; retained messages per Retain Handling.
 */
export function autoSubscribe(ch: Channel): void {
  const subscriptions = autoSubscriptions(ch.ctx.autoSubscribe, ch.clientId, ch.username);
  if (subscriptions.length === 0) return;
  const p: SubscribePacket = { type: 'subscribe', packetId: 0, subscriptions };
  ch.ctx.counters.autoSubscriptions += subscriptions.length;
  completeSubscribe(
    ch,
    p,
    subscriptions.map(() => true),
    true,
  );
}

/**
 * Subscribes the allowed filters and answers SUBACK; `verdicts[i]` is a refusal code or the
 * authorizer's answer. `internal`: made by the broker (autoSubscribe): no SUBACK, no authorization.
 */
function completeSubscribe(
  ch: Channel,
  packet: SubscribePacket,
  verdicts: ReadonlyArray<number | boolean>,
  internal = false,
): void {
  const o = ch.ctx.options;
  const v5 = ch.version === 5;
  const subscriptionId = packet.properties?.subscriptionIdentifiers?.[0];
  const session = ch.session!;
  if (!internal)
    for (const v of verdicts)
      if (typeof v === 'boolean') count(ch.ctx.counters.authz, v ? 'subscribe allow' : 'subscribe deny');
  // Authorized as sent; subscribed under the rewritten filter (topicRewrite).
  const rewrite = ch.ctx.rewrite;
  const p: SubscribePacket =
    rewrite === undefined
      ? packet
      : {
          ...packet,
          subscriptions: packet.subscriptions.map((s) => ({ ...s, topic: rewrittenFilter(ch, s.topic) })),
        };
  const codes: number[] = [];
  const granted: Granted[] = [];
  /** Subscriptions of a session the cluster keeps: SUBACK waits until Redis holds them. */
  let stored:
    | { index: number; granted: Granted | undefined; write: Promise<void>; previous?: SubscriptionOptions }[]
    | undefined;
  for (let i = 0; i < p.subscriptions.length; i++) {
    const s = p.subscriptions[i];
    const verdict = verdicts[i];
    let code: number;
    if (typeof verdict === 'number') code = verdict;
    else if (!verdict) {
      ch.ctx.logger.debug({
        event: 'auth.subscribe_denied',
        clientId: ch.clientId,
        username: ch.username,
        filter: s.topic,
      });
      code = v5 ? ReasonCode.NotAuthorized : SubackFailure; // [MQTT-3.9.3-1] [MQTT-3.9.3-2]
    } else if (overSubscriptionQuota(ch, s.topic)) {
      code = v5 ? ReasonCode.QuotaExceeded : SubackFailure;
    } else {
      const parsed = parseSubscription(s.topic)!;
      // Any requested QoS is accepted [MQTT-3.2.2-10]; the QoS granted may be lower (MQTT 5 §3.8.4).
      const qos = Math.min(s.qos, o.maximumQoS) as QoS;
      const options: SubscriptionOptions = {
        qos,
        noLocal: s.noLocal,
        retainAsPublished: s.retainAsPublished,
        retainHandling: s.retainHandling,
      };
      if (subscriptionId !== undefined) options.subscriptionId = subscriptionId;
      const previous = session.subscriptions.get(s.topic);
      const existed = previous !== undefined;
      // [MQTT-3.8.4-3] replaces
      const write = ch.ctx.subscribe(session, s.topic, parsed.filter, parsed.group, options);
      if (!existed && ch.wildcardSubscriptions >= 0 && isWildcard(s.topic)) ch.wildcardSubscriptions++;
      const g = parsed.group === null ? { filter: parsed.filter, options, existed } : undefined;
      if (g !== undefined) granted.push(g);
      if (write !== undefined) {
        stored ??= [];
        stored.push({ index: codes.length, granted: g, write, previous });
      }
      code = qos;
    }
    codes.push(code);
  }
  if (stored === undefined) {
    suback(ch, p, codes, granted, internal);
    return;
  }
  const writes = stored;
  // Later packets wait for the SUBACK (a throttle: it nests with a hold of the authorization step).
  const resume = ch.out.throttle();
  void Promise.all(
    writes.map((w) =>
      w.write.then(
        () => true,
        () => false,
      ),
    ),
  ).then((oks) => {
    if (ch.state !== 'connected') {
      resume();
      return;
    }
    for (let i = 0; i < writes.length; i++) {
      if (oks[i]) continue;
      // Not stored (Redis away, or the connection lost ownership): refused rather than kept by nobody.
      codes[writes[i].index] = v5 ? ReasonCode.UnspecifiedError : SubackFailure;
      const w = writes[i];
      const raw = p.subscriptions[w.index].topic;
      if (w.previous !== undefined) {
        // It replaced a subscription: the previous one stays, as the client still believes.
        const parsed = parseSubscription(raw)!;
        ch.ctx.subscribe(ch.session!, raw, parsed.filter, parsed.group, w.previous)?.catch(() => undefined);
      } else {
        ch.ctx.unsubscribe(ch.session!, raw).stored?.catch(() => undefined);
        if (ch.wildcardSubscriptions > 0 && isWildcard(raw)) ch.wildcardSubscriptions--;
      }
      const g = writes[i].granted;
      if (g !== undefined) granted.splice(granted.indexOf(g), 1);
    }
    suback(ch, p, codes, granted, internal);
    resume();
  });
}

function suback(
  ch: Channel,
  p: SubscribePacket,
  codes: number[],
  granted: readonly Granted[],
  internal: boolean,
): void {
  // [MQTT-3.8.4-1] SUBACK with the same packet id, [MQTT-3.8.4-6] one code per filter in order.
  if (!internal) ch.write(encode({ type: 'suback', packetId: p.packetId, reasonCodes: codes }, ch.version));
  for (const g of granted) sendRetained(ch, g);
}

/**
 * limits.maxSubscriptionsPerClient and maxWildcardSubscriptionsPerClient: true (and counted) when a
 * new filter would pass one. Replacing a subscription the session holds is always allowed.
 */
function overSubscriptionQuota(ch: Channel, raw: string): boolean {
  const session = ch.session!;
  if (session.subscriptions.has(raw)) return false;
  const limits = ch.ctx.limits;
  const { maxSubscriptionsPerClient: maxAll, maxWildcardSubscriptionsPerClient: maxWild } = limits.options;
  if (maxAll > 0 && session.subscriptions.size >= maxAll) {
    limits.hit('subscriptions');
    return true;
  }
  if (maxWild > 0 && isWildcard(raw)) {
    if (ch.wildcardSubscriptions < 0) {
      // Counted once per connection (a resumed session brings its subscriptions), then kept up to date.
      let n = 0;
      for (const key of session.subscriptions.keys()) if (isWildcard(key)) n++;
      ch.wildcardSubscriptions = n;
    }
    if (ch.wildcardSubscriptions >= maxWild) {
      limits.hit('wildcard_subscriptions');
      return true;
    }
  }
  return false;
}

function isWildcard(filter: string): boolean {
  return filter.includes('+') || filter.includes('#');
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
  const stored: Promise<void>[] = [];
  for (const sent of p.topics) {
    const raw = ch.ctx.rewrite === undefined ? sent : rewrittenFilter(ch, sent);
    const parsed = parseSubscription(raw);
    if (parsed === null) {
      codes.push(ReasonCode.TopicFilterInvalid);
      continue;
    }
    const { existed, stored: write } = ch.ctx.unsubscribe(session, raw);
    if (existed && ch.wildcardSubscriptions > 0 && isWildcard(raw)) ch.wildcardSubscriptions--;
    if (write !== undefined) stored.push(write);
    codes.push(existed ? ReasonCode.Success : ReasonCode.NoSubscriptionExisted);
  }
  const unsuback = () =>
    // [MQTT-3.10.4-4] UNSUBACK even when nothing was removed.
    ch.write(
      encode(
        { type: 'unsuback', packetId: p.packetId, reasonCodes: ch.version === 5 ? codes : undefined },
        ch.version,
      ),
    );
  if (stored.length === 0) {
    unsuback();
    return;
  }
  // A session the cluster keeps: UNSUBACK once Redis dropped the subscriptions too; if it could not,
  // the connection closes (the client resumes and unsubscribes again) rather than be told a lie.
  const resume = ch.out.throttle();
  Promise.all(stored).then(
    () => {
      if (ch.state === 'connected') unsuback();
      resume();
    },
    (err: Error) => {
      ch.storeFailed(err);
      resume();
    },
  );
}

/** A SUBSCRIBE / UNSUBSCRIBE filter after topicRewrite, counted when a rule changed it. */
function rewrittenFilter(ch: Channel, filter: string): string {
  const out = ch.ctx.rewrite!.subscribe(filter);
  if (out !== filter) count(ch.ctx.counters.rewrites, 'subscribe');
  return out;
}
