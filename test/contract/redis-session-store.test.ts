/**
 * The Redis SessionStore on a real Redis, through two cluster backends (nodes A and B): what a claim
 * loads, packet ids recorded at fetch, the queue limit and offline QoS 0, expiry by key TTL, and the
 * fence — a former owner's writes (after a takeover, or after the reaper orphaned its sessions) are
 * refused by Redis.
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import type { ClusterHandlers } from '../../src/backend/types.js';
import type { Message } from '../../src/broker/message.js';
import { systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import type { Delivery } from '../../src/session/session.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

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

interface Node {
  backend: RedisClusterBackend;
  dropped: string[];
  pokes: string[];
}

let prefix = '';
const started: RedisClusterBackend[] = [];

async function node(nodeId: string): Promise<Node> {
  const n: Node = {
    backend: new RedisClusterBackend({
      url: redis.url,
      nodeId,
      clock: systemClock,
      logger: createLogger('silent'),
      prefix,
      heartbeatMs: 200,
      livenessTimeoutMs: 2000,
      maxQueued: 3,
    }),
    dropped: [],
    pokes: [],
  };
  const handlers: ClusterHandlers = {
    deliver: () => undefined,
    release: () => undefined,
    publishWill: () => undefined,
    readinessChanged: () => undefined,
    poke: (ids) => n.pokes.push(...ids),
    dropped: (_reason, id) => n.dropped.push(id),
    stateLost: () => undefined,
  };
  await n.backend.start(handlers);
  started.push(n.backend);
  return n;
}

afterEach(async () => {
  await Promise.all(started.splice(0).map((b) => b.stop()));
});

const delivery = (payload: string, qos: 0 | 1 | 2 = 1): Delivery => {
  const message: Message = { topic: 't', payload: Buffer.from(payload), qos, retain: false };
  return { message, qos, retain: false };
};

/** Appends and waits until Redis answered. */
function append(n: Node, id: string, d: Delivery): Promise<void> {
  return new Promise((resolve, reject) =>
    n.backend.sessions.append(id, d, (err) => (err ? reject(err) : resolve())),
  );
}

describe('Redis session store', () => {
  it('a claim with expiry creates the session; fetch gives packet ids recorded before sending; a new owner loads them in order', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const first = await a.backend.claim('c1', false, 60);
    expect(first.session?.present).toBe(false);
    for (const p of ['m0', 'm1', 'm2']) await append(b, 'c1', delivery(p, p === 'm1' ? 2 : 1));
    const fetched = await a.backend.sessions.fetch('c1', first.epoch, 10);
    expect(fetched.map((f) => f.delivery.message.payload.toString())).toEqual(['m0', 'm1', 'm2']);
    expect(fetched.map((f) => f.packetId)).toEqual([1, 2, 3]);
    expect(fetched[1].delivery.qos).toBe(2);
    // m0 acknowledged, m1 at PUBREL: what a new owner must finish.
    a.backend.sessions.acknowledged('c1', first.epoch, 1);
    await a.backend.sessions.releasing('c1', first.epoch, 2);
    const second = await b.backend.claim('c1', false, 60);
    expect(second.session?.present).toBe(true);
    expect(second.session?.inflight.map((e) => [e.packetId, e.phase])).toEqual([
      [2, 'pubrel'],
      [3, 'publish'],
    ]);
    // Nothing left to fetch: everything was taken already.
    expect(await b.backend.sessions.fetch('c1', second.epoch, 10)).toEqual([]);
  });

  it('(fencing) after a takeover the former owner can neither fetch nor change the session', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const old = await a.backend.claim('c2', false, 60);
    await append(a, 'c2', delivery('x'));
    const taken = await b.backend.claim('c2', false, 60);
    expect(taken.epoch).toBeGreaterThan(old.epoch);
    expect(await a.backend.sessions.fetch('c2', old.epoch, 10)).toEqual([]);
    await expect(a.backend.sessions.awaitRelease('c2', old.epoch, 9, true)).rejects.toThrow(/fenced/);
    await a.backend.sessions.detach('c2', old.epoch, 0);
    // Still B's, still holding its message.
    expect(await client.hget(`${prefix}:sess:{c2}`, 'on')).toBe('B');
    const got = await b.backend.sessions.fetch('c2', taken.epoch, 10);
    expect(got.map((f) => f.delivery.message.payload.toString())).toEqual(['x']);
  });

  it('a full queue drops (reported), an offline session takes no QoS 0, an ended one takes nothing', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const a = await node('A');
    const c = await a.backend.claim('c3', false, 60);
    await a.backend.sessions.detach('c3', c.epoch, 60);
    expect(await client.hget(`${prefix}:sess:{c3}`, 'on')).toBe('');
    await append(a, 'c3', delivery('zero', 0));
    for (const p of ['q0', 'q1', 'q2', 'q3']) await append(a, 'c3', delivery(p));
    expect(await client.xlen(`${prefix}:q:{c3}`)).toBe(3); // maxQueued 3
    expect(a.dropped).toEqual(['c3']);
    // Offline: the queue expires with the session.
    expect(await client.pttl(`${prefix}:q:{c3}`)).toBeGreaterThan(50_000);
    const ended = await a.backend.claim('c3', true, 0); // Clean Start, no expiry: ended
    expect(ended.session).toBeUndefined();
    await append(a, 'c3', delivery('late'));
    expect(await client.exists(`${prefix}:q:{c3}`, `${prefix}:sess:{c3}`)).toBe(0);
  });

  it('a reaped node: its sessions go offline with their expiry, and its writes are refused afterwards', async () => {
    prefix = `ss-${randomBytes(4).toString('hex')}`;
    const [a, b] = [await node('A'), await node('B')];
    const c = await a.backend.claim('c4', false, 30);
    await append(b, 'c4', delivery('kept'));
    expect(await b.backend.sessions.reap('A')).toBe(1);
    expect(await client.hget(`${prefix}:sess:{c4}`, 'on')).toBe('');
    expect(await client.pttl(`${prefix}:sess:{c4}`)).toBeGreaterThan(20_000);
    // A was only paused: back, it can no longer take from the queue.
    expect(await a.backend.sessions.fetch('c4', c.epoch, 10)).toEqual([]);
    const resumed = await b.backend.claim('c4', false, 30);
    expect(resumed.previous).toBeNull();
    expect(resumed.session?.present).toBe(true);
    const got = await b.backend.sessions.fetch('c4', resumed.epoch, 10);
    expect(got.map((f) => f.delivery.message.payload.toString())).toEqual(['kept']);
  });
});
