/** Delayed publish (src/extensions/delayed.ts): the topic syntax, and the memory store's schedule and leases. */
import { describe, expect, it } from 'vitest';
import { MemoryDelayedStore } from '../../../src/backend/memory/delayed.js';
import { parseDelayed } from '../../../src/extensions/delayed.js';
import type { Message } from '../../../src/message.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const msg = (topic: string): Message => ({ topic, payload: Buffer.from(topic), qos: 1, retain: false });

describe('$delayed/<seconds>/<topic>', () => {
  it.each([
    ['$delayed/10/a/b', { seconds: 10, topic: 'a/b' }],
    ['$delayed/0/t', { seconds: 0, topic: 't' }],
    ['a/b', undefined],
    ['$SYS/x', undefined],
    ['$delayed/x/t', null],
    ['$delayed/10', null],
    ['$delayed/10/', null],
    ['$delayed/10/a/+', null],
    ['$delayed/10/$SYS/x', null],
    ['$delayed/100/t', null], // over the maximum below
  ])('%s', (topic, parsed) => {
    expect(parseDelayed(topic, 99)).toEqual(parsed);
  });
});

describe('the memory store', () => {
  it('hands out due messages in due order, each to one taker; a lease that runs out makes them due again', async () => {
    const clock = new FakeClock();
    const s = new MemoryDelayedStore(clock);
    await s.add(msg('late'), 2000, 10);
    await s.add(msg('early'), 1000, 10);
    expect(await s.take(10, 5000)).toEqual([]);
    clock.advance(2000);
    const taken = await s.take(10, 5000);
    expect(taken.map((d) => d.message.topic)).toEqual(['early', 'late']);
    expect(await s.take(10, 5000)).toEqual([]); // leased
    clock.advance(5000);
    const again = await s.take(10, 5000); // the taker died: due again
    expect(again.map((d) => d.message.topic).sort()).toEqual(['early', 'late']);
    await s.done(again.map((d) => d.id));
    clock.advance(10_000);
    expect(await s.take(10, 5000)).toEqual([]);
    expect(s.size).toBe(0);
  });

  it('is bounded, lists and cancels', async () => {
    const s = new MemoryDelayedStore(new FakeClock());
    const a = await s.add(msg('a'), 1000, 2);
    await s.add(msg('b'), 2000, 2);
    expect(await s.add(msg('c'), 3000, 2)).toBe(false);
    expect((await s.list(10)).map((d) => d.message.topic)).toEqual(['a', 'b']);
    expect(await s.cancel(a as string)).toBe(true);
    expect(await s.cancel(a as string)).toBe(false);
    expect((await s.list(10)).map((d) => d.message.topic)).toEqual(['b']);
  });
});
