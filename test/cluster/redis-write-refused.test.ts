/**
 * A write Redis refuses costs what it wrote, never the node (product rule: bad input and failing
 * parts close a connection or refuse a request, not the process). Found by the verifier's
 * `cluster-master-kill` class: ioredis hands MOVED back to the caller during a Redis Cluster
 * failover with autopipelining (ioredis#2075), and a QoS 0 retained publish whose write failed was
 * an unhandled rejection that killed all three nodes. Replayed here with writes refused for lack of
 * memory (maxmemory 1, noeviction), as a failing-over shard refuses them.
 */
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, endAll, type ShoalNode, startCluster, uniq, waitFor } from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

let redis: RedisHandle;
let admin: Redis;
let A: ShoalNode;

beforeAll(async () => {
  redis = await startRedis();
  admin = redisClient(redis);
  [A] = await startCluster(1, redis.url);
}, 30_000);

afterAll(async () => {
  admin?.disconnect();
  await killAllTracked();
  await redis?.stop();
});

/** How many commands Redis refused for lack of memory so far. */
async function oomErrors(): Promise<number> {
  const info = String(await admin.info('errorstats'));
  return Number(/errorstat_OOM:count=(\d+)/.exec(info)?.[1] ?? 0);
}

describe('A write Redis refuses', () => {
  it('a QoS 0 retained publish whose Redis write fails leaves the node running', async () => {
    const { client: pub } = await connectMqtt(A.url);
    const [, policy] = (await admin.config('GET', 'maxmemory-policy')) as string[];
    try {
      const before = await oomErrors();
      await admin.config('SET', 'maxmemory-policy', 'noeviction');
      await admin.config('SET', 'maxmemory', '1');
      await pub.publishAsync(uniq('r/t'), 'kept?', { qos: 0, retain: true });
      await waitFor(async () => (await oomErrors()) > before, 5_000, 'the retained write refused');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
      await admin.config('SET', 'maxmemory-policy', policy);
      await endAll(pub);
    }
    // Still serving: a round trip through it.
    const topic = uniq('alive');
    const sub = await connectMqtt(A.url);
    try {
      await sub.client.subscribeAsync(topic, { qos: 1 });
      await sub.client.publishAsync(topic, 'yes', { qos: 1 });
      await sub.inbox.payload('yes', 5_000);
    } finally {
      await endAll(sub.client);
    }
    expect(A.process.running).toBe(true);
  }, 30_000);
});
