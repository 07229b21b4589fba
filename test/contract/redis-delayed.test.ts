/**
 * The delayed messages of a cluster in Redis (src/backend/redis/delayed.ts, delayed-*.lua): two
 * nodes taking side by side never get the same message; a lease that ran out (its node died while
 * publishing) gives the message to the next taker; done, it is gone; the bound holds cluster-wide.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RedisDelayedStore } from '../../src/backend/redis/delayed.js';
import { Keys } from '../../src/backend/redis/keys.js';
import type { Message } from '../../src/message.js';
import { redisPerFile } from '../helpers/redis.js';

const shared = redisPerFile();
const msg = (topic: string): Message => ({ topic, payload: Buffer.from(topic), qos: 1, retain: true });

describe('Redis delayed store', () => {
  it('two nodes taking at once get each due message once; bodies and flags come back as stored', async () => {
    const keys = new Keys(`dl-${randomBytes(4).toString('hex')}`);
    const a = new RedisDelayedStore(shared.client, keys);
    const b = new RedisDelayedStore(shared.client, keys);
    for (let i = 0; i < 200; i++) expect(await (i % 2 ? a : b).add(msg(`t/${i}`), 0, 1000)).not.toBe(false);
    const [fromA, fromB] = await Promise.all([a.take(150, 30_000), b.take(150, 30_000)]);
    const topics = [...fromA, ...fromB].map((d) => d.message.topic);
    expect(topics).toHaveLength(200);
    expect(new Set(topics).size).toBe(200);
    expect(fromA[0].message).toMatchObject({ qos: 1, retain: true });
    await a.done(fromA.map((d) => d.id));
    await b.done(fromB.map((d) => d.id));
    expect(await a.take(10, 30_000)).toEqual([]);
    expect(a.size).toBe(0);
  });

  it("a taker's lease that ran out hands the message to the next taker; cancel and the bound", async () => {
    const keys = new Keys(`dl-${randomBytes(4).toString('hex')}`);
    const s = new RedisDelayedStore(shared.client, keys);
    await s.add(msg('x'), 0, 2);
    // Leased for 0 ms: as if its node died at once.
    const first = await s.take(10, 0);
    expect(first.map((d) => d.message.topic)).toEqual(['x']);
    const second = await s.take(10, 30_000);
    expect(second.map((d) => d.id)).toEqual(first.map((d) => d.id));
    await s.done(second.map((d) => d.id));
    const later = await s.add(msg('later'), 3_600_000, 2);
    await s.add(msg('later2'), 3_600_000, 2);
    expect(await s.add(msg('over'), 3_600_000, 2)).toBe(false);
    expect((await s.list(10)).map((d) => d.message.topic)).toEqual(['later', 'later2']);
    expect(await s.cancel(later as string)).toBe(true);
    expect(await s.cancel(later as string)).toBe(false);
    expect((await s.list(10)).map((d) => d.message.topic)).toEqual(['later2']);
  });
});
