/**
 * Redis keys must not grow without bound (#11.12): what a shared.client, a retained message or a node run
 * leaves in Redis goes away (or gets a TTL) once nothing needs it, without weakening the fencing or
 * the replicas. Real Redis, real backends (and, where the broker decides, a real broker).
 */
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { RedisClusterBackend } from '../../src/backend/redis/backend.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { OWNER_LINGER_MS } from '../../src/backend/redis/scripts.js';
import { systemClock } from '../../src/clock.js';
import type { Message } from '../../src/message.js';
import { createLogger } from '../../src/observability/logger.js';
import { startTestBroker, type TestBroker } from '../helpers/broker.js';
import { connectMqtt, uniq, waitFor } from '../helpers/cluster.js';
import { idleHandlers } from '../helpers/cluster-handlers.js';
import { redisPerFile } from '../helpers/redis.js';

const shared = redisPerFile();

const backends: RedisClusterBackend[] = [];
const brokers: TestBroker[] = [];

afterEach(async () => {
  for (const b of brokers.splice(0)) await b.close();
  await Promise.all(backends.splice(0).map((b) => b.stop()));
});

function backend(nodeId: string, prefix: string): RedisClusterBackend {
  const b = new RedisClusterBackend({
    url: shared.redis.url,
    nodeId,
    clock: systemClock,
    logger: createLogger('silent'),
    prefix,
    heartbeatMs: 200,
    livenessTimeoutMs: 2000,
  });
  backends.push(b);
  return b;
}

async function node(nodeId: string, prefix: string): Promise<RedisClusterBackend> {
  const b = backend(nodeId, prefix);
  await b.start(idleHandlers());
  return b;
}

/** Redis' clock in ms, from a TIME reply. */
const redisNow = (t: (number | string)[]) => Number(t[0]) * 1000 + Math.floor(Number(t[1]) / 1000);

const freshPrefix = () => `g-${randomBytes(4).toString('hex')}`;

describe('owner hashes do not outlive their shared.client (#11.12a)', () => {
  it('(#11.12a) a clean session that connected and disconnected leaves its owner hash with a TTL (or none)', async () => {
    const prefix = freshPrefix();
    const broker = await startTestBroker({}, { cluster: backend('A', prefix) });
    brokers.push(broker);
    const clientId = uniq('clean');
    const { client: mqtt } = await connectMqtt(broker.url, { clientId, clean: true });
    const owner = new Keys(prefix).owner(clientId);
    expect(await shared.client.exists(owner)).toBe(1);
    await mqtt.endAsync();
    // No TTL is -1; a TTL is > 0; gone is -2.
    await waitFor(async () => (await shared.client.pttl(owner)) !== -1, 5000, 'a TTL on the owner hash');
  });

  it('(#11.12a) a persistent session that went offline: its owner hash lives at least as long as the session', async () => {
    const prefix = freshPrefix();
    const a = await node('A', prefix);
    const c = await a.claim('p1', false, 60);
    await a.sessions.detach('p1', c.epoch, 60);
    const keys = new Keys(prefix);
    expect(await shared.client.pttl(keys.session('p1'))).toBeGreaterThan(0);
    expect(await shared.client.pttl(keys.owner('p1'))).toBeGreaterThan(60_000);
    // Claimed again: no TTL while a connection owns it.
    await a.claim('p1', false, 60);
    expect(await shared.client.pttl(keys.owner('p1'))).toBe(-1);
  });

  it('(#11.12a) once an owner hash is gone, a new claim still gets a higher epoch and a write of the old epoch is refused', async () => {
    const prefix = freshPrefix();
    const a = await node('A', prefix);
    const keys = new Keys(prefix);
    const old = await a.claim('e1', false, 60);
    await a.sessions.detach('e1', old.epoch, 60);
    // Redis expires the owner hash only once its clock passed the epoch by OWNER_LINGER_MS (that
    // margin is for a clock stepped back); here it goes as soon as the clock passed the epoch.
    expect(await shared.client.pttl(keys.owner('e1'))).toBeGreaterThan(60_000 + OWNER_LINGER_MS - 1000);
    await waitFor(
      async () => redisNow(await shared.client.time()) > old.epoch,
      2000,
      "Redis' clock past the epoch",
    );
    await shared.client.del(keys.owner('e1'), keys.session('e1'));
    const fresh = await a.claim('e1', false, 60);
    expect(fresh.epoch).toBeGreaterThan(old.epoch);
    // The former connection (same node) writes with its epoch: fenced.
    await expect(a.sessions.awaitRelease('e1', old.epoch, 7, true)).rejects.toThrow(/fenced/);
    await a.storeWill('e1', old.epoch, {
      message: { topic: 'w', payload: Buffer.from('stale'), qos: 0, retain: false },
      delaySeconds: 0,
    });
    expect(await shared.client.hexists(keys.owner('e1'), 'will')).toBe(0);
    expect(await a.takeWill('e1', old.epoch)).toBe(false);
  });
});

const retainedMsg = (topic: string, payload: string | Buffer, expiresAt?: number): Message => ({
  topic,
  payload: Buffer.isBuffer(payload) ? payload : Buffer.from(payload),
  qos: 1,
  retain: true,
  ...(expiresAt === undefined ? {} : { expiresAt }),
});

describe('expired retained messages are swept (#11.12b)', () => {
  it('(#11.12b) a retained message with a 1 s expiry leaves the Redis hash and the replicas without anyone reading it; a replaced one stays', async () => {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    const a = await node('A', prefix);
    const b = await node('B', prefix);
    const now = systemClock.now();
    await a.retained.set(retainedMsg('x/expiring', 'soon gone', now + 1000));
    await a.retained.set(retainedMsg('x/replaced', 'old', now + 1000));
    await a.retained.set(retainedMsg('x/replaced', 'new, no expiry'));
    await waitFor(() => b.retained.size === 2, 5000, "B's replica holding both");
    await waitFor(
      async () => (await shared.client.hexists(keys.retained(0), 'x/expiring')) === 0,
      6000,
      'the expired message gone from Redis',
    );
    // The delete went through the retained log: B's replica dropped it without a read.
    await waitFor(() => b.retained.size === 1, 5000, "B's replica without it");
    expect(await shared.client.hexists(keys.retained(0), 'x/replaced')).toBe(1);
    expect(b.retained.get('x/replaced')?.payload.toString()).toBe('new, no expiry');
  });
});

describe('the retained log is bounded in bytes, not only entries (#11.12c)', () => {
  it('(#11.12c) 30 retained messages of 100 KB: the log stays small whatever the payload size, and another node still gets the payloads', async () => {
    const prefix = freshPrefix();
    const keys = new Keys(prefix);
    const a = await node('A', prefix);
    const b = await node('B', prefix);
    const body = (i: number, v: string) => Buffer.alloc(100 * 1024, `${v}${i}.`);
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 30; i++) writes.push(a.retained.set(retainedMsg(`big/${i}`, body(i, 'v1-'))));
    // Replaced and deleted after: B must end on the last version of each.
    writes.push(a.retained.set(retainedMsg('big/0', body(0, 'v2-'))));
    writes.push(a.retained.set(retainedMsg('big/1', '')));
    await Promise.all(writes);
    const expected = (i: number) => (i === 0 ? body(0, 'v2-') : body(i, 'v1-'));
    await waitFor(
      () => {
        for (let i = 0; i < 30; i++) {
          const got = b.retained.get(`big/${i}`)?.payload;
          if (i === 1 ? got !== undefined : got === undefined || !got.equals(expected(i))) return false;
        }
        return true;
      },
      10_000,
      "B's replica with the right payloads",
    );
    const bytes = Number(await shared.client.call('MEMORY', 'USAGE', keys.retainedLog(0), 'SAMPLES', '0'));
    // 32 entries of a short topic each; the payloads (3 MB) are only in the hash.
    expect(bytes).toBeLessThan(64 * 1024);
    // A node that loads from scratch (snapshot) agrees.
    const c = await node('C', prefix);
    expect(c.retained.get('big/0')?.payload.equals(expected(0))).toBe(true);
    expect(c.retained.size).toBe(29);
  });
});

describe('retained writers leave no state behind (#11.12d)', () => {
  /** The retained-seq keys of a prefix with their PTTL. */
  async function seqKeys(prefix: string): Promise<Map<string, number>> {
    const found = await shared.client.keys(`{${prefix}}:retained-seq*`);
    const out = new Map<string, number>();
    for (const key of found) out.set(key, await shared.client.pttl(key));
    return out;
  }

  it('(#11.12d) a node run numbering its retained writes keeps that number under a TTL, and removes it when it leaves', async () => {
    const prefix = freshPrefix();
    const a = await node('A', prefix);
    await a.retained.set(retainedMsg('s/1', 'one'));
    await a.retained.set(retainedMsg('s/2', 'two'));
    const live = await seqKeys(prefix);
    expect(live.size).toBe(1);
    // A run that dies without leaving: its number goes after the TTL (a day past its last write).
    for (const ttl of live.values()) {
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(86_400_000);
    }
    await a.stop();
    expect((await seqKeys(prefix)).size).toBe(0);
  });
});
