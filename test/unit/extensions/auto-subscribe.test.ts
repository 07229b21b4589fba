/** Auto-subscribe rules (src/extensions/auto-subscribe.ts): placeholders and options. */
import { describe, expect, it } from 'vitest';
import { autoSubscriptions } from '../../../src/extensions/auto-subscribe.js';

describe('auto-subscribe rules', () => {
  it('fill %c and %u; options default to QoS 0 and false / 0', () => {
    expect(
      autoSubscriptions(
        [
          { topic: 'devices/%c/cmd', qos: 1, noLocal: true },
          { topic: 'users/%u/inbox' },
          { topic: 'broadcast/#', retainHandling: 2 },
        ],
        'dev-1',
        'alice',
      ),
    ).toEqual([
      { topic: 'devices/dev-1/cmd', qos: 1, noLocal: true, retainAsPublished: false, retainHandling: 0 },
      { topic: 'users/alice/inbox', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 0 },
      { topic: 'broadcast/#', qos: 0, noLocal: false, retainAsPublished: false, retainHandling: 2 },
    ]);
  });

  it('skip a %u rule for a client without a user name', () => {
    expect(
      autoSubscriptions([{ topic: 'users/%u/inbox' }, { topic: 'c/%c' }], 'dev-1', undefined).map(
        (s) => s.topic,
      ),
    ).toEqual(['c/dev-1']);
  });

  it('skip a rule whose placeholder value would change the levels (a client id holding /, + or #)', () => {
    for (const id of ['a/b', 'a+', '#'])
      expect(autoSubscriptions([{ topic: 'devices/%c/cmd' }], id, undefined), id).toEqual([]);
  });
});
