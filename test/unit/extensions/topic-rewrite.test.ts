/**
 * Topic rewrite (src/extensions/topic-rewrite.ts) against EMQX's documented example: three rules,
 * read from the last to the first; the first rule whose filter matches decides, and when its
 * regular expression does not match nothing is rewritten.
 */
import { describe, expect, it } from 'vitest';
import { TopicRewriter } from '../../../src/extensions/topic-rewrite.js';

// The example of EMQX's "Topic Rewrite" page (its rules 1, 2 and 3, in that order).
const EMQX_EXAMPLE = [
  { action: 'all' as const, sourceTopic: 'y/+/z/#', regex: '^y/(.+)/z/(.+)$', destTopic: 'y/z/$2' },
  { action: 'all' as const, sourceTopic: 'x/#', regex: '^x/y/(.+)$', destTopic: 'z/y/x/$1' },
  { action: 'all' as const, sourceTopic: 'x/y/+', regex: '^x/y/(\\d+)$', destTopic: 'z/y/$1' },
];

describe('topic rewrite, EMQX example', () => {
  const r = new TopicRewriter(EMQX_EXAMPLE);
  it.each([
    ['y/def', 'y/def'], // matches no rule's filter
    ['y/a/z/b', 'y/z/b'], // rule 1: [a, b] -> y/z/$2
    ['x/1/2', 'x/1/2'], // rule 2's filter, its regular expression does not match: not rewritten
    ['x/y/2', 'z/y/2'], // rules 2 and 3 match; 3 is read first
    ['x/y/z', 'x/y/z'], // rules 2 and 3 match; 3 decides, its expression does not match
  ])('subscribing to %s subscribes to %s', (sent, subscribed) => {
    expect(r.subscribe(sent)).toBe(subscribed);
  });

  it('applies to PUBLISH topics too (action all)', () => {
    expect(r.publish('y/a/z/b')).toBe('y/z/b');
    expect(r.publish('x/y/2')).toBe('z/y/2');
  });
});

describe('topic rewrite rules', () => {
  it('a publish rule leaves subscriptions alone and a subscribe rule leaves publishes alone', () => {
    const r = new TopicRewriter([
      { action: 'publish', sourceTopic: 'old/#', regex: '^old/(.+)$', destTopic: 'new/$1' },
      { action: 'subscribe', sourceTopic: 'legacy/#', regex: '^legacy/(.+)$', destTopic: 'v2/$1' },
    ]);
    expect(r.publish('old/a')).toBe('new/a');
    expect(r.subscribe('old/a')).toBe('old/a');
    expect(r.subscribe('legacy/a/+')).toBe('v2/a/+');
    expect(r.publish('legacy/a')).toBe('legacy/a');
  });

  it('rewrites only the filter of a shared subscription, keeping $share/<group>/', () => {
    const r = new TopicRewriter([{ sourceTopic: 't/#', regex: '^t/(.+)$', destTopic: 'u/$1' }]);
    expect(r.subscribe('$share/g1/t/1')).toBe('$share/g1/u/1');
  });

  it('a result that is not a valid topic (publish) or filter (subscribe) leaves the topic as sent', () => {
    const r = new TopicRewriter([
      { sourceTopic: 'a/#', regex: '^a/(.+)$', destTopic: '$1/#' },
      { sourceTopic: 'b/#', regex: '^b/(.+)$', destTopic: 'c/#/$1' },
    ]);
    expect(r.publish('a/x')).toBe('a/x'); // x/# is a filter, not a topic name
    expect(r.subscribe('a/x')).toBe('x/#');
    expect(r.subscribe('b/x')).toBe('b/x'); // c/#/x is not a valid filter
  });
});
