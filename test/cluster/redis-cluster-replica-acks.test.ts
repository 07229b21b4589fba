/**
 * `cluster.replicaAcks` on Redis Cluster (guarantees.md, Redis Cluster master failover row): a QoS 1
 * batch counts as accepted only once WAIT confirms a replica holds it. WAIT covers the writes of
 * the connection it is sent on; when the master that took the batch is killed and its replica
 * (which never got the batch) promoted, a WAIT on the new connection is answered for a connection
 * that wrote nothing — it must not confirm the lost batch.
 *
 * The ioredis Cluster client emits `close` only when every node is gone, so the bus never saw its
 * connection to a killed master end (found reading the code after the verifier's
 * `--faults cluster-master-kill` runs lost acknowledged messages with replicaAcks 1).
 */
import { randomBytes } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisBus } from '../../src/backend/redis/bus.js';
import { onConnectionClose, parseRedisUrl } from '../../src/backend/redis/connect.js';
import { Keys } from '../../src/backend/redis/keys.js';
import { waitFor } from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import {
  type RedisClusterHandle,
  type RedisInstance,
  startRedisCluster,
} from '../helpers/redis-topologies.js';

let redis: RedisClusterHandle;

beforeAll(async () => {
  redis = await startRedisCluster();
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  await killAllTracked();
}, 30_000);

interface NodeLine {
  id: string;
  address: string;
  flags: string[];
  masterId: string;
  slots: string[];
}

async function clusterNodes(asked: RedisInstance): Promise<NodeLine[]> {
  const text = String(await asked.call('CLUSTER', 'NODES'));
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const [id, address, flags, masterId, , , , , ...slots] = line.split(' ');
      return { id, address: address.split('@')[0], flags: flags.split(','), masterId, slots };
    });
}

/** The master serving the slot of `key` (asked of a live node) and its replica. */
async function shardOf(
  client: Cluster,
  key: string,
): Promise<{ master: RedisInstance; replica: RedisInstance }> {
  const slot = Number(await client.call('CLUSTER', 'KEYSLOT', key));
  const lines = await clusterNodes(redis.nodes[0]);
  const m = lines.find(
    (l) =>
      l.flags.includes('master') &&
      l.slots.some((r) => {
        const [from, to = from] = r.split('-').map(Number);
        return slot >= from && slot <= to;
      }),
  );
  const r = lines.find((l) => l.masterId === m?.id);
  const master = redis.nodes.find((n) => n.address === m?.address);
  const replica = redis.nodes.find((n) => n.address === r?.address);
  if (master === undefined || replica === undefined) throw new Error(`no shard found for ${key}`);
  return { master, replica };
}

describe('Redis Cluster: replicaAcks across a master kill', () => {
  it('(guarantees.md, Redis Cluster failover) the bus sees its connection to a killed master close, so a later WAIT does not cover batches that master took', async () => {
    const client = parseRedisUrl(redis.url).create() as Cluster;
    client.on('error', () => undefined);
    await client.connect();
    try {
      const keys = new Keys(`t-${randomBytes(4).toString('hex')}`);
      const inbox = keys.inbox('B');
      await client.xadd(inbox, '*', 'init', '1');
      // CLUSTER NODES may not list the shard's replica yet right after the cluster formed: asked again.
      let shard: Awaited<ReturnType<typeof shardOf>> | undefined;
      await waitFor(
        async () => {
          shard = await shardOf(client, inbox).catch(() => undefined);
          return shard !== undefined;
        },
        10_000,
        'the inbox shard’s master and replica',
      );
      const { master, replica } = shard as Awaited<ReturnType<typeof shardOf>>;
      let closes = 0;
      onConnectionClose(client, () => closes++);
      await master.kill();
      await waitFor(() => closes > 0, 10_000, 'a close seen for the killed master’s connection');
      // And the bus, with replicaAcks, refuses what was accepted on that connection: a batch sent
      // while the shard has no master fails or is refused, never confirmed by the new master's
      // WAIT for a connection that wrote nothing.
      const bus = new RedisBus(client, keys, true, 10_000, { replicas: 1, timeoutMs: 2_000 }, 'A');
      let outcome: Error | 'ok' | undefined;
      bus.send(
        'B',
        { message: { topic: 't', payload: Buffer.from('m'), qos: 1, retain: false }, direct: true },
        (err) => {
          outcome = err ?? 'ok';
        },
      );
      bus.flush();
      await waitFor(
        async () => ((await replica.call('ROLE')) as unknown[])[0] === 'master',
        30_000,
        'the replica promoted',
      );
      await master.start();
      await waitFor(() => outcome !== undefined, 30_000, 'the batch answered');
      const len = Number(await replica.call('XLEN', inbox));
      // Confirmed only if the promoted master holds it (and a replica does).
      if (outcome === 'ok') expect(len).toBe(2);
    } finally {
      client.disconnect();
    }
  }, 120_000);
});
