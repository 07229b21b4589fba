/**
 * Shared subscriptions across nodes [MQTT-4.8.2]: a share routed to a node whose last member of the
 * group left before the share was delivered goes to a member on another node (it was acknowledged
 * to its publisher already). Two in-process brokers on a real Redis; the share is written into B's
 * inbox as a publishing node's bus writes it, after B's member left: the order that otherwise
 * depends on timing is made exact.
 */
import { randomBytes } from 'node:crypto';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { encodeBatch } from '../../../src/backend/record.js';
import { RedisClusterBackend } from '../../../src/backend/redis/backend.js';
import { systemClock } from '../../../src/clock.js';
import { createLogger } from '../../../src/observability/logger.js';
import { startTestBroker, type TestBroker } from '../../helpers/broker.js';
import { connectMqtt, endAll, uniq, waitFor } from '../../helpers/cluster.js';
import { type RedisHandle, redisClient, startRedis } from '../../helpers/redis.js';

let redis: RedisHandle;
const prefix = `sr-${randomBytes(4).toString('hex')}`;
const brokers: TestBroker[] = [];
const backends: RedisClusterBackend[] = [];
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  for (const nodeId of ['B', 'C']) {
    const backend = new RedisClusterBackend({
      url: redis.url,
      nodeId,
      clock: systemClock,
      logger: createLogger('silent'),
      prefix,
    });
    backends.push(backend);
    brokers.push(await startTestBroker({}, { cluster: backend }));
  }
}, 30_000);

afterAll(async () => {
  await endAll(...clients.splice(0));
  for (const b of brokers) await b.close();
  await redis?.stop();
});

it('[MQTT-4.8.2] a share that reaches node B after the group member there left is delivered to the member on node C', async () => {
  const [B, C] = brokers;
  const [backendB] = backends;
  const topic = uniq('reroute');
  const onB = await connectMqtt(B.url);
  const onC = await connectMqtt(C.url);
  clients.push(onB.client, onC.client);
  await onB.client.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
  await onC.client.subscribeAsync(`$share/g/${topic}`, { qos: 1 });
  const key = `g\n${topic}`;
  await waitFor(
    () => {
      let known = false;
      backendB.replica.matchShared(topic, (k, nodes) => {
        if (k === key && nodes.has('C')) known = true;
      });
      return known;
    },
    10_000,
    "C's member in B's route replica",
  );
  await onB.client.unsubscribeAsync(`$share/g/${topic}`);

  // The share a publishing node routed to B while B still had the member, arriving now.
  const batch = encodeBatch([
    {
      message: { topic, payload: Buffer.from('after-leave'), qos: 1, retain: false },
      direct: false,
      shared: [key],
    },
  ]);
  const r = redisClient(redis);
  try {
    await r.xadd(`${prefix}:inbox:{B}`, '*', 'b', batch, 'f', 'A/test', 's', '1');
  } finally {
    r.disconnect();
  }
  await onC.inbox.payload('after-leave', 5_000);
  expect(onB.inbox.payloads).not.toContain('after-leave');
}, 30_000);
