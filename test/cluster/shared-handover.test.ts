/**
 * Shared subscriptions survive a member's node (CLUSTER.md "shared subscriptions that survive a
 * member's death"): shares acknowledged to their publisher and waiting in the inbox of a node that
 * dies are handed by the reaper to a member of the group on a live node.
 */
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { connectMqtt, endAll, type ShoalNode, startCluster, uniq, waitFor } from '../helpers/cluster.js';
import { killAllTracked } from '../helpers/processes.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

let redis: RedisHandle;
let A: ShoalNode;
let B: ShoalNode;
let C: ShoalNode;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  [A, B, C] = await startCluster(3, redis.url, { cluster: { heartbeatMs: 500, livenessTimeoutMs: 2000 } });
}, 60_000);

afterAll(async () => {
  await endAll(...clients.splice(0));
  await killAllTracked();
  await redis?.stop();
});

it('(shared subscriptions, guarantee 2) shares in the inbox of a node killed with kill -9 while stopped reach the group member on a live node', async () => {
  const topic = uniq('handover');
  const onB = await connectMqtt(B.url);
  const onC = await connectMqtt(C.url);
  const { client: pub } = await connectMqtt(A.url);
  clients.push(onB.client, onC.client, pub);
  for (const m of [onB, onC]) await m.client.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
  // Both members routed on A: probes until each member got one (each probe reaches one member).
  await waitFor(
    async () => {
      await pub.publishAsync(topic, 'probe', { qos: 1 });
      return onB.inbox.messages.length > 0 && onC.inbox.messages.length > 0;
    },
    10_000,
    'both members to get a probe',
  );

  // B stops reading: A's shares for B wait in B's inbox, acknowledged.
  B.kill('SIGSTOP');
  const n = 40;
  await Promise.all(Array.from({ length: n }, (_, i) => pub.publishAsync(topic, `m${i}`, { qos: 1 })));
  const r = redisClient(redis);
  try {
    expect(await r.xlen('shoal:inbox:{B}')).toBeGreaterThan(1);
  } finally {
    r.disconnect();
  }
  B.kill('SIGKILL');
  await B.process.exited;

  const data = () => onC.inbox.payloads.filter((p) => p.startsWith('m'));
  await waitFor(() => new Set(data()).size === n, 20_000, `all ${n} shares on C`);
  expect(new Set(data())).toEqual(new Set(Array.from({ length: n }, (_, i) => `m${i}`)));
}, 60_000);
