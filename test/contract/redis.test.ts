/**
 * The RetainedStore contract against RedisRetainedStore on a real Redis (each test its own key
 * prefix), plus what only the Redis store promises: Redis holds the truth (a fresh store loads the
 * same messages from its snapshot) and the retained log replays every change to other replicas.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/backend/redis/keys.js';
import { RedisRetainedStore } from '../../src/backend/redis/retained-store.js';
import type { Message } from '../../src/broker/message.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';
import { retainedStoreContract } from './retained-store.contract.js';

let redis: RedisHandle;
let client: Redis;

beforeAll(async () => {
  redis = await startRedis();
  client = redisClient(redis);
});

afterAll(async () => {
  client?.disconnect();
  await redis?.stop();
});

const freshKeys = () => new Keys(`t-${randomBytes(5).toString('hex')}`);

retainedStoreContract('redis', (clock) => new RedisRetainedStore(client, freshKeys(), clock, 1000));

const msg = (topic: string, payload: string, extra: Partial<Message> = {}): Message => ({
  topic,
  payload: Buffer.from(payload),
  qos: 1,
  retain: true,
  ...extra,
});

function collect(store: RedisRetainedStore, filter: string): string[] {
  const out: string[] = [];
  store.match(filter, (m) => out.push(`${m.topic}=${m.payload.toString()}`));
  return out.sort();
}

describe('RedisRetainedStore: Redis holds the truth', () => {
  it('a second store on the same keys loads what the first wrote (set, replace, delete), with properties and expiry', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(client, keys, clock, 1000);
    await a.set(msg('x/1', 'one'));
    await a.set(
      msg('x/2', 'two', { properties: { contentType: 'text/plain' }, expiresAt: clock.now() + 60_000 }),
    );
    await a.set(msg('x/1', 'uno'));
    await a.set(msg('x/3', 'three'));
    await a.set(msg('x/3', ''));
    expect(await client.hlen(keys.retained)).toBe(2);

    const b = new RedisRetainedStore(client, keys, clock, 1000);
    await b.loadSnapshot();
    expect(b.size).toBe(2);
    expect(collect(b, 'x/#')).toEqual(['x/1=uno', 'x/2=two']);
    const two = b.get('x/2');
    expect(two?.properties?.contentType).toBe('text/plain');
    expect(two?.expiresAt).toBe(clock.now() + 60_000);
    expect(two?.retain).toBe(true);
  });

  it('replaying the retained log onto an empty replica reproduces the store', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(client, keys, clock, 1000);
    await a.set(msg('r/a', '1'));
    await a.set(msg('r/b', '2'));
    await a.set(msg('r/a', ''));
    await a.set(msg('r/c', '3'));
    const replica = new RedisRetainedStore(client, keys, clock, 1000);
    const entries = await client.xrangeBuffer(keys.retainedLog, '-', '+');
    expect(entries.map(([, f]) => f[1].toString())).toEqual(['s', 's', 'd', 's']);
    for (const [, fields] of entries) {
      const f: Record<string, Buffer> = {};
      for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i].toString()] = fields[i + 1];
      replica.applyLog(f.op.toString(), f.t.toString(), f.m);
    }
    expect(collect(replica, '#')).toEqual(collect(a, '#'));
    expect(collect(replica, '#')).toEqual(['r/b=2', 'r/c=3']);
  });

  it('an expired message is removed from Redis too, unless it was replaced meanwhile', async () => {
    const keys = freshKeys();
    const clock = new FakeClock();
    const a = new RedisRetainedStore(client, keys, clock, 1000);
    const stale = new RedisRetainedStore(client, keys, clock, 1000);
    await a.set(msg('e/1', 'old', { expiresAt: clock.now() + 1000 }));
    await stale.loadSnapshot();
    await a.set(msg('e/1', 'new'));
    clock.advance(1000);
    // `stale` still holds the expired copy: expiring it must not delete the newer message in Redis.
    expect(stale.get('e/1')).toBeUndefined();
    // Same connection, so this reply comes after the expiry script's.
    expect((await client.hgetBuffer(keys.retained, 'e/1')) === null).toBe(false);
    await a.set(msg('e/2', 'short', { expiresAt: clock.now() + 10 }));
    clock.advance(10);
    expect(collect(a, 'e/#')).toEqual(['e/1=new']);
    expect(await client.hexists(keys.retained, 'e/2')).toBe(0);
  });
});
