/**
 * Three Shoal nodes on a 6-node Redis Cluster (3 masters + 3 replicas): messages across nodes at
 * QoS 0 (sharded pub/sub) and QoS 1 (inbox streams), wildcards, retained messages, a shared
 * subscription spread over the nodes, and a node without subscribers that never sees a message.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/backend/redis/keys.js';
import {
  connectMqtt,
  endAll,
  type Inbox,
  isProbe,
  type ShoalNode,
  startCluster,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import { type RedisClusterHandle, startRedisCluster } from '../helpers/redis-topologies.js';

let redis: RedisClusterHandle;
let A: ShoalNode;
let B: ShoalNode;
let C: ShoalNode;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedisCluster();
  [A, B, C] = await startCluster(3, redis.url);
}, 60_000);

afterEach(async () => {
  await endAll(...clients.splice(0));
});

afterAll(async () => {
  await endAll(...clients.splice(0));
  await Promise.all([A, B, C].map((n) => n?.stop()));
  await redis?.stop();
  await killAllTracked();
}, 30_000);

async function client(node: ShoalNode, opts: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

const real = (inbox: Inbox) => inbox.data;

describe('Shoal on Redis Cluster', () => {
  // First, so that C has never had a subscriber when its counter is read.
  it('a node without a matching subscriber receives nothing', { timeout: 30_000 }, async () => {
    const base = uniq('iso');
    const { client: pub } = await client(A);
    const { client: sub, inbox } = await client(B);
    await sub.subscribeAsync(`${base}/#`, { qos: 1 });
    await untilRouted(pub, `${base}/probe`, [inbox]);
    const sentBefore = await A.metric('shoal_cluster_messages_sent_total');

    for (let i = 0; i < 50; i++) pub.publish(`${base}/q0/${i}`, `q0-${i}`, { qos: 0 });
    await Promise.all(
      Array.from({ length: 50 }, (_, i) => pub.publishAsync(`${base}/q1/${i}`, `q1-${i}`, { qos: 1 })),
    );
    await inbox.until((m) => realCount(m) >= 100, 10_000, '100 messages');

    expect(await A.metric('shoal_cluster_messages_sent_total')).toBeGreaterThanOrEqual(sentBefore + 100);
    expect(await B.metric('shoal_cluster_messages_received_total')).toBeGreaterThanOrEqual(100);
    expect(await C.metric('shoal_cluster_messages_received_total')).toBe(0);
    expect(await C.metric('shoal_messages_sent_total')).toBe(0);
  });

  it('QoS 0 (sharded pub/sub) and QoS 1 (inbox streams) reach subscribers on two other nodes', {
    timeout: 30_000,
  }, async () => {
    const base = uniq('qos');
    const { client: pub } = await client(A);
    const b = await client(B);
    const c = await client(C);
    await b.client.subscribeAsync(`${base}/#`, { qos: 1 });
    await c.client.subscribeAsync(`${base}/#`, { qos: 1 });
    await untilRouted(pub, `${base}/probe`, [b.inbox, c.inbox]);

    // QoS 0 between nodes goes over sharded pub/sub: each node's channel is a shard channel.
    const shardChannels = new Set<string>();
    for (const n of redis.nodes) {
      for (const ch of (await n.call('PUBSUB', 'SHARDCHANNELS')) as string[]) shardChannels.add(ch);
    }
    expect(shardChannels).toContain('shoal:inbox0:{B}');
    expect(shardChannels).toContain('shoal:inbox0:{C}');

    const N = 100;
    for (let i = 0; i < N; i++) pub.publish(`${base}/t`, `q0-${i}`, { qos: 0 });
    await Promise.all(
      Array.from({ length: N }, (_, i) => pub.publishAsync(`${base}/t`, `q1-${i}`, { qos: 1 })),
    );
    for (const { inbox } of [b, c]) {
      await inbox.until((m) => realCount(m) >= 2 * N, 10_000, `${2 * N} messages`);
      const got = real(inbox);
      const q0 = got.filter((m) => m.payload.startsWith('q0-'));
      const q1 = got.filter((m) => m.payload.startsWith('q1-'));
      // Loopback, no blip: QoS 0 arrives too, each once and in order (one publisher, one topic, one QoS).
      expect(q0.map((m) => m.payload)).toEqual(Array.from({ length: N }, (_, i) => `q0-${i}`));
      expect(q1.map((m) => m.payload)).toEqual(Array.from({ length: N }, (_, i) => `q1-${i}`));
      expect(q0.every((m) => m.qos === 0)).toBe(true);
      expect(q1.every((m) => m.qos === 1)).toBe(true);
    }
  });

  it('wildcard subscriptions on other nodes match', { timeout: 30_000 }, async () => {
    const base = uniq('wild');
    const { client: pub } = await client(A);
    const b = await client(B);
    const c = await client(C);
    await b.client.subscribeAsync(`${base}/+/temp`, { qos: 1 });
    await c.client.subscribeAsync(`${base}/#`, { qos: 1 });
    await untilRouted(pub, `${base}/probe/temp`, [b.inbox, c.inbox]);

    await pub.publishAsync(`${base}/kitchen/temp`, 'k-temp', { qos: 1 });
    await pub.publishAsync(`${base}/kitchen/humidity`, 'k-hum', { qos: 1 });
    await pub.publishAsync(`${base}/hall/temp`, 'h-temp', { qos: 0 });
    await pub.publishAsync(`${base}/hall/a/temp`, 'ha-temp', { qos: 1 });
    await c.inbox.until((m) => realCount(m) >= 4, 10_000, '4 messages on C');
    await b.inbox.until((m) => realCount(m) >= 2, 10_000, '2 messages on B');
    expect(
      real(c.inbox)
        .map((m) => m.payload)
        .sort(),
    ).toEqual(['h-temp', 'ha-temp', 'k-hum', 'k-temp']);
    // Round trip through A once more, so that anything wrongly routed to B would have arrived.
    await pub.publishAsync(`${base}/end/temp`, 'end', { qos: 1 });
    await b.inbox.until((m) => m.some((x) => x.payload === 'end'), 10_000, 'end on B');
    expect(
      real(b.inbox)
        .map((m) => m.payload)
        .sort(),
    ).toEqual(['end', 'h-temp', 'k-temp']);
  });

  it('a retained message set through A is delivered to a new subscriber on B', {
    timeout: 30_000,
  }, async () => {
    const base = uniq('ret');
    const { client: pub } = await client(A);
    await pub.publishAsync(`${base}/state`, 'on', { qos: 1, retain: true });
    // The retained store is Redis; B's replica follows the retained log.
    const { client: sub, inbox } = await client(B);
    await sub.subscribeAsync(`${base}/+`, { qos: 1 });
    await inbox.until((m) => m.length >= 1, 10_000, 'the retained message');
    expect(inbox.messages[0]).toMatchObject({ topic: `${base}/state`, payload: 'on', retain: true, qos: 1 });

    // Last writer wins; an empty payload deletes (seen by a later subscriber on C).
    await pub.publishAsync(`${base}/state`, 'off', { qos: 1, retain: true });
    await pub.publishAsync(`${base}/other`, 'x', { qos: 1, retain: true });
    await pub.publishAsync(`${base}/other`, '', { qos: 1, retain: true });
    await waitFor(
      async () => {
        const probe = await client(C);
        await probe.client.subscribeAsync(`${base}/+`, { qos: 1 });
        try {
          await probe.inbox.until((m) => m.length >= 1, 2_000);
        } catch {
          return false;
        }
        return probe.inbox.messages.length === 1 && probe.inbox.messages[0].payload === 'off';
      },
      10_000,
      'C to see only the latest retained message',
    );
  });

  it('a shared subscription spread over three nodes gets each message exactly once', {
    timeout: 40_000,
  }, async () => {
    const base = uniq('shared');
    const group = 'g1';
    const { client: pub } = await client(A);
    const members = await Promise.all([A, B, C].map((n) => client(n)));
    for (const m of members) await m.client.subscribeAsync(`$share/${group}/${base}/#`, { qos: 1 });
    await untilRouted(
      pub,
      `${base}/probe`,
      members.map((m) => m.inbox),
      { shared: true },
    );

    const N = 90;
    await Promise.all(
      Array.from({ length: N }, (_, i) => pub.publishAsync(`${base}/t`, `s-${i}`, { qos: 1 })),
    );
    const total = () => members.reduce((s, m) => s + real(m.inbox).length, 0);
    await waitFor(() => total() >= N, 10_000, `${N} shared messages`);
    // Anything delivered twice would have arrived by the time a last message went round.
    await pub.publishAsync(`${base}/t`, 'last', { qos: 1 });
    await waitFor(() => total() >= N + 1, 10_000, 'the last shared message');

    const all = members.flatMap((m) => real(m.inbox).map((x) => x.payload));
    expect(all).toHaveLength(N + 1);
    expect(new Set(all).size).toBe(N + 1);
    for (const [i, m] of members.entries()) {
      // Round-robin over three nodes: every node's member gets a fair share.
      expect(real(m.inbox).length, `member on ${['A', 'B', 'C'][i]}`).toBeGreaterThanOrEqual(N / 6);
    }
  });

  it('a persistent session resumes through another node: every script keeps to the session slot', {
    timeout: 30_000,
  }, async () => {
    const base = uniq('ps');
    const session = { clientId: uniq('ps'), clean: false, properties: { sessionExpiryInterval: 300 } };
    const { client: pub } = await client(A);
    const sub = await client(B, session);
    await sub.client.subscribeAsync(`${base}/#`, { qos: 2 });
    await untilRouted(pub, `${base}/probe`, [sub.inbox]);
    await sub.client.endAsync();
    for (let i = 0; i < 50; i++) await pub.publishAsync(`${base}/t`, `m-${i}`, { qos: i % 2 === 0 ? 1 : 2 });
    const again = await client(C, session);
    await again.inbox.until((m) => realCount(m) >= 50, 10_000, '50 queued messages');
    // In order per QoS (MQTT.js hands QoS 2 messages over at PUBREL, so the two interleave freely).
    const got = real(again.inbox);
    const expected = (qos: number) =>
      Array.from({ length: 50 }, (_, i) => i)
        .filter((i) => (i % 2 === 0 ? 1 : 2) === qos)
        .map((i) => `m-${i}`);
    for (const qos of [1, 2])
      expect(got.filter((m) => m.qos === qos).map((m) => m.payload)).toEqual(expected(qos));
    await pub.publishAsync(`${base}/t`, 'live', { qos: 1 });
    await again.inbox.payload('live');
  });

  it('a client id starting with } keeps all its keys in one slot', { timeout: 30_000 }, async () => {
    const session = {
      clientId: `}${uniq('brace')}`,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    };
    const first = await client(A, session);
    expect(first.client.connected).toBe(true);
    await first.client.endAsync();
    const again = await client(B, session);
    expect(again.client.connected).toBe(true);
  });

  // Last: it kills C.
  it('(#13.6) routes, retained messages and session routes are spread over the 3 masters; C killed -9 loses its routes in every partition', {
    timeout: 60_000,
  }, async () => {
    const base = uniq('parts');
    const keys = new Keys('shoal', 6); // what a new data set on Redis Cluster gets
    expect(await redis.nodes[0].call('GET', keys.layout).catch(masterAnswer(keys.layout))).toBe('6');
    const FILTERS = 120;
    const c = await client(C);
    await c.client.subscribeAsync(
      Array.from({ length: FILTERS }, (_, i) => `${base}/f${i}`),
      { qos: 1 },
    );
    const persistent = await client(C, {
      clientId: `${base}-p`,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
    });
    await persistent.client.subscribeAsync(`${base}/persistent/#`, { qos: 1 });
    const { client: pub } = await client(A);
    for (let i = 0; i < FILTERS; i++)
      await pub.publishAsync(`${base}/r/${i}`, `r${i}`, { qos: 1, retain: true });

    // Each partition holds some of C's routes and some retained messages, and the partitions' keys
    // are on all three masters.
    const masters = new Set<string>();
    let routes = 0;
    for (const p of keys.allPartitions()) {
      const [master, count] = await onMaster('SCARD', keys.nodeRoutes('C', p));
      expect(Number(count), `partition ${p}`).toBeGreaterThan(0);
      routes += Number(count);
      masters.add(master);
      const [retainedMaster, retained] = await onMaster('HLEN', keys.retained(p));
      expect(retainedMaster).toBe(master);
      expect(Number(retained), `partition ${p}`).toBeGreaterThan(0);
    }
    expect(routes).toBe(FILTERS);
    expect(masters.size).toBe(3);
    const sessionPartition = keys.partitionOf(`${base}-p`);
    const [, sessionRoute] = await onMaster(
      'HGET',
      keys.sessionRoutes(sessionPartition),
      `${base}-p\0${base}/persistent/#`,
    );
    expect(sessionRoute).not.toBeNull();

    // What the nodes say about it (#14): A's replica holds C's routes; Redis' memory summed over the masters.
    expect(await A.metric('shoal_cluster_routes')).toBeGreaterThanOrEqual(FILTERS);
    expect(await A.metric('shoal_cluster_session_routes')).toBeGreaterThanOrEqual(1);
    const used = await Promise.all(
      redis.nodes.map(async (n) =>
        ((await n.call('ROLE')) as string[])[0] === 'master'
          ? Number(/used_memory:(\d+)/.exec(String(await n.call('INFO', 'memory')))?.[1])
          : 0,
      ),
    );
    expect(await A.metric('shoal_redis_used_memory_bytes')).toBeGreaterThan(
      0.5 * used.reduce((x, y) => x + y, 0),
    );

    // A subscriber on B gets the retained messages of every partition from its replica.
    const b = await client(B);
    await b.client.subscribeAsync(`${base}/r/+`, { qos: 1 });
    await b.inbox.until((m) => realCount(m) >= FILTERS, 10_000, `${FILTERS} retained messages`);

    expect(C.kill('SIGKILL')).toBe(true);
    await C.process.exited;
    await waitFor(
      async () => {
        for (const p of keys.allPartitions())
          if (Number((await onMaster('EXISTS', keys.nodeRoutes('C', p)))[1]) !== 0) return false;
        return true;
      },
      15_000,
      "C's routes gone from every partition",
    );
    // Each partition's log says so, for the replicas.
    for (const p of keys.allPartitions()) {
      const [, last] = await onMaster('XREVRANGE', keys.routeLog(p), '+', '-', 'COUNT', 1);
      expect((last as [string, string[]][])[0][1]).toEqual(['op', 'n', 'n', 'C', 'f', '']);
    }
    // The persistent session's route outlives its node (its queue keeps filling).
    expect(
      (await onMaster('HGET', keys.sessionRoutes(sessionPartition), `${base}-p\0${base}/persistent/#`))[1],
    ).not.toBeNull();
  });
});

/** A reply from whichever master owns `key`'s slot (the others answer MOVED): [master, reply]. */
async function onMaster(
  command: string,
  key: string,
  ...args: (string | number)[]
): Promise<[string, unknown]> {
  for (const n of redis.nodes) {
    try {
      return [n.address, await n.call(command, key, ...args)];
    } catch (err) {
      if (!/MOVED|READONLY/.test(String(err))) throw err;
    }
  }
  throw new Error(`no master answered ${command} ${key}`);
}

/** Reads `key` on its master when the node asked first answered MOVED. */
function masterAnswer(key: string) {
  return async (err: unknown) => {
    if (!/MOVED/.test(String(err))) throw err;
    return (await onMaster('GET', key))[1];
  };
}

function realCount(messages: { payload: string }[]): number {
  let n = 0;
  for (const m of messages) if (!isProbe(m.payload)) n++;
  return n;
}
