/**
 * Topic rewrite (#15), with EMQX's rules: each rule has an action (publish, subscribe or all), a
 * source topic filter, a regular expression and a destination with `$1`..`$9` for its groups. A
 * PUBLISH topic (publish rules) or a SUBSCRIBE / UNSUBSCRIBE filter (subscribe rules; of a shared
 * subscription only the part after `$share/<group>/`) is matched against the rules' filters from the
 * last rule to the first; the first whose filter matches decides: its regular expression, if it
 * matches, makes the new topic; if it does not, the topic stays as it is (no other rule is tried).
 * Authorization sees the topic as the client sent it (EMQX checks before rewriting); routing,
 * retained messages and the session see the rewritten one. A result that is not a valid topic name
 * (publish) or filter (subscribe) leaves the topic as it was. Pure: no I/O, no state.
 */
import { isValidTopicFilter, isValidTopicName, topicMatches } from '../topics/index.js';

/** A rule as configured (`topicRewrite`); `action` left out is `all`. */
export interface RewriteRule {
  readonly action?: 'publish' | 'subscribe' | 'all';
  readonly sourceTopic: string;
  readonly regex: string;
  readonly destTopic: string;
}

interface Compiled {
  readonly publish: boolean;
  readonly subscribe: boolean;
  readonly source: string;
  readonly re: RegExp;
  readonly dest: string;
}

export class TopicRewriter {
  /** Last rule first: the order rules are tried in. */
  private readonly rules: Compiled[];

  constructor(rules: readonly RewriteRule[]) {
    this.rules = rules
      .map((r) => ({
        publish: r.action !== 'subscribe',
        subscribe: r.action !== 'publish',
        source: r.sourceTopic,
        re: new RegExp(r.regex),
        dest: r.destTopic,
      }))
      .reverse();
  }

  get empty(): boolean {
    return this.rules.length === 0;
  }

  /** The topic a PUBLISH goes to. */
  publish(topic: string): string {
    const out = this.apply(topic, 'publish');
    return out !== topic && isValidTopicName(out) ? out : topic;
  }

  /** The filter a SUBSCRIBE or UNSUBSCRIBE is for (`$share/<group>/` kept, the rest rewritten). */
  subscribe(raw: string): string {
    let prefix = '';
    let filter = raw;
    if (raw.startsWith('$share/')) {
      const slash = raw.indexOf('/', 7);
      if (slash < 0) return raw;
      prefix = raw.slice(0, slash + 1);
      filter = raw.slice(slash + 1);
    }
    const out = this.apply(filter, 'subscribe');
    return out !== filter && isValidTopicFilter(out) ? prefix + out : raw;
  }

  private apply(topic: string, kind: 'publish' | 'subscribe'): string {
    for (const r of this.rules) {
      if (!(kind === 'publish' ? r.publish : r.subscribe)) continue;
      // A subscribed filter is matched as the text it is ('+' matches a level named '+').
      if (!topicMatches(r.source, topic)) continue;
      const m = r.re.exec(topic);
      if (m === null) return topic;
      return r.dest.replace(/\$(\d)/g, (_all, n: string) => m[Number(n)] ?? '');
    }
    return topic;
  }
}
