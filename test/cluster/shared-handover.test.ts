import { expect, it } from 'vitest';
import { connectMqtt, uniq, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';
import { redisClient } from '../helpers/redis.js';

const {
  redis,
  nodes: [A, B, C],
  clients,
} = clusterPerFile({ nodes: 3, config: { cluster: { heartbeatMs: 500, livenessTimeoutMs: 2000 } } });

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
