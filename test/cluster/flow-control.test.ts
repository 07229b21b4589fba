/**
 * Guarantee 2 between online clients: a QoS 1 message acknowledged to its publisher on node A is not
 * dropped on node B when B's subscriber cannot keep up — B stops reading its inbox stream until the
 * subscriber drained, and the publisher's window (its acknowledgements) does the rest.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { connectMqtt, endAll, type ShoalNode, startCluster, uniq, untilRouted } from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import { type RedisHandle, startRedis } from '../helpers/redis.js';

let redis: RedisHandle;
let A: ShoalNode;
let B: ShoalNode;

beforeAll(async () => {
  redis = await startRedis();
  // A small queue makes the subscriber congested quickly.
  [A, B] = await startCluster(2, redis.url, { mqtt: { maxQueuedMessages: 100 } });
}, 60_000);

afterAll(async () => {
  await killAllTracked();
  await redis?.stop();
});

const clients: MqttClient[] = [];
afterEach(async () => {
  await endAll(...clients.splice(0));
});

it('(guarantee 2) every QoS 1 message acknowledged on node A reaches a slower subscriber on node B', async () => {
  const topic = uniq('flow');
  const sub = await connectMqtt(B.url);
  clients.push(sub.client);
  await sub.client.subscribeAsync(topic, { qos: 1 });
  const { client: pub } = await connectMqtt(A.url);
  clients.push(pub);
  await untilRouted(pub, topic, [sub.inbox]);

  const n = 10_000;
  const acked: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) acked.push(pub.publishAsync(topic, `m${i}`, { qos: 1 }));
  await Promise.all(acked);
  await sub.inbox.dataCount(n, 60_000);
  const got = sub.inbox.data.map((m) => m.payload);
  expect(new Set(got).size).toBe(n);
  // Per-publisher order across nodes (guarantee 6).
  expect(got.filter((p, i) => got.indexOf(p) === i)).toEqual(Array.from({ length: n }, (_, i) => `m${i}`));
  expect(await B.metric('shoal_messages_dropped_total{reason="queue_full"}')).toBe(0);
}, 90_000);
