/**
 * Guarantee 9 of CLUSTER.md on Redis Cluster: a failover of the shard holding the node set (the
 * `{shoal}` slot) is an outage of the heartbeats only, not of the nodes. Its master is stopped
 * (SIGSTOP) until its replica is promoted; meanwhile no heartbeat gets through, and afterwards the
 * heartbeats in Redis are as old as the outage. No live node may be reaped for that, and no will of
 * a connected client fired. (ioredis' Cluster client emits no close/ready for one shard.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectMqtt, endAll, type ShoalNode, startCluster, uniq, waitFor } from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import {
  type RedisClusterHandle,
  type RedisInstance,
  startRedisCluster,
} from '../helpers/redis-topologies.js';

let redis: RedisClusterHandle;
let nodes: ShoalNode[];
const LIVENESS_MS = 1500;
/** The slot of `{shoal}`: CRC16('shoal') mod 16384. */
const SHOAL_SLOT = 3374;

beforeAll(async () => {
  redis = await startRedisCluster();
  nodes = await startCluster(3, redis.url, { cluster: { heartbeatMs: 200, livenessTimeoutMs: LIVENESS_MS } });
}, 90_000);

afterAll(async () => {
  await Promise.all((nodes ?? []).map((n) => n.stop()));
  await redis?.stop();
  await killAllTracked();
}, 30_000);

/** `host:port` of the master serving `slot`, as `asked` sees the cluster. */
async function masterOf(asked: RedisInstance, slot: number): Promise<string | undefined> {
  const text = String(await asked.call('CLUSTER', 'NODES'));
  for (const line of text.split('\n')) {
    const [, address, flags, , , , , , ...slots] = line.split(' ');
    if (flags === undefined || !flags.split(',').includes('master') || flags.includes('fail')) continue;
    const serves = slots.some((range) => {
      const [from, to = from] = range.split('-').map(Number);
      return slot >= from && slot <= to;
    });
    if (serves) return address.split('@')[0];
  }
  return undefined;
}

describe('Redis Cluster: failover of the node set’s shard', () => {
  it('(guarantee 9) no live node is reaped and no will fired when the {shoal} master fails over', async () => {
    const old = redis.nodes[0];
    const oldAddress = await masterOf(old, SHOAL_SLOT);
    const master = redis.nodes.find((n) => n.address === oldAddress);
    expect(master).toBeDefined();
    const others = redis.nodes.filter((n) => n !== master);

    const willTopic = uniq('will');
    const watcher = await connectMqtt(nodes[0].url);
    await watcher.client.subscribeAsync(`${willTopic}/#`, { qos: 1 });
    const holders = await Promise.all(
      nodes.map((n, i) =>
        connectMqtt(n.url, {
          will: { topic: `${willTopic}/${i}`, payload: Buffer.from('gone'), qos: 1, retain: false },
        }),
      ),
    );

    master!.process.kill('SIGSTOP');
    try {
      await waitFor(
        async () => {
          const now = await masterOf(others[0], SHOAL_SLOT).catch(() => undefined);
          return now !== undefined && now !== oldAddress;
        },
        30_000,
        'a replica promoted for the {shoal} slot',
      );
    } finally {
      master!.process.kill('SIGCONT');
    }
    const promotedAt = Date.now();

    // Every node heartbeats again on the new master, for longer than a liveness period after the
    // outage: a reaper misled by the stale heartbeats would have acted by then.
    const newAddress = await masterOf(others[0], SHOAL_SLOT);
    const promoted = redis.nodes.find((n) => n.address === newAddress)!;
    await waitFor(
      async () => {
        const [t] = (await promoted.call('TIME')) as [string, string];
        const redisNow = Number(t) * 1000;
        const raw = (await promoted.call('ZRANGE', '{shoal}:nodes', 0, -1, 'WITHSCORES')) as string[];
        const fresh = raw.filter((_, i) => i % 2 === 1 && Number(raw[i]) > redisNow - 500).length;
        return Date.now() - promotedAt > 2 * LIVENESS_MS && fresh === nodes.length;
      },
      30_000,
      'heartbeats back on the new master past a liveness period',
    );

    for (const n of nodes) {
      expect(n.process.output()).not.toMatch(/"event":"cluster\.(node_reaped|was_reaped)"/);
    }
    expect(watcher.inbox.messages).toEqual([]);
    expect(holders.every((h) => h.client.connected)).toBe(true);
    await endAll(watcher.client, ...holders.map((h) => h.client));
  }, 120_000);
});
