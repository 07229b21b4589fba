/**
 * Auto-subscribe (#15): subscriptions a client gets on connect by rule, as EMQX's
 * emqx_auto_subscribe gives them. Each rule names a topic filter with placeholders (`%c` the client
 * id, `%u` the user name; a rule with `%u` is skipped for a client without one) and the subscription
 * options (QoS, and for every protocol version No Local, Retain As Published, Retain Handling). They
 * are made after CONNACK like the client's own SUBSCRIBE, without a SUBACK and without the
 * authorizer (they are the operator's, not the client's), and retained messages come per Retain
 * Handling. A filter that is not valid once filled in (a client id holding `+`, `#` or `/`
 * would change the filter's levels) is skipped. Pure: the channel applies what this returns.
 */
import type { QoS } from '../protocol/index.js';
import { isValidTopicFilter } from '../topics/index.js';

/** A rule as configured (`autoSubscribe`); the options left out are 0 / false. */
export interface AutoSubscribeRule {
  readonly topic: string;
  readonly qos?: QoS;
  readonly noLocal?: boolean;
  readonly retainAsPublished?: boolean;
  readonly retainHandling?: 0 | 1 | 2;
}

/** A SUBSCRIBE entry, as the codec decodes one. */
export interface AutoSubscription {
  topic: string;
  qos: QoS;
  noLocal: boolean;
  retainAsPublished: boolean;
  retainHandling: 0 | 1 | 2;
}

/** The subscriptions `rules` give a client. */
export function autoSubscriptions(
  rules: readonly AutoSubscribeRule[],
  clientId: string,
  username: string | undefined,
): AutoSubscription[] {
  const out: AutoSubscription[] = [];
  for (const r of rules) {
    if (r.topic.includes('%u') && username === undefined) continue;
    // A placeholder's value fills part of one level: one holding `/`, `+` or `#` would change the
    // filter's levels (a client id `a/#` must not subscribe to everything under `devices/a`).
    const values = { c: clientId, u: username ?? '' };
    const used = [...r.topic.matchAll(/%([cu])/g)].map((m) => values[m[1] as 'c' | 'u']);
    if (used.some((v) => /[/+#]/.test(v))) continue;
    const topic = r.topic.replace(/%([cu])/g, (_m, k: 'c' | 'u') => values[k]);
    if (!isValidTopicFilter(topic)) continue;
    out.push({
      topic,
      qos: r.qos ?? 0,
      noLocal: r.noLocal ?? false,
      retainAsPublished: r.retainAsPublished ?? false,
      retainHandling: r.retainHandling ?? 0,
    });
  }
  return out;
}
