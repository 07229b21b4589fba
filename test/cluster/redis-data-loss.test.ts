import { describe, expect, it } from 'vitest';
import { connectMqtt, uniq, untilRouted, waitFor } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  redis,
  admin,
  nodes: [A, B],
  clients,
} = clusterPerFile({
  nodes: 2,
  // Three partitions on one Redis (#13.6): the layout must come back with the data set.
  config: { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500, partitions: 3 } },
  processRedis: { persistence: false },
});

describe('Redis restarted without persistence', () => {
  it('clients are disconnected and claim again, sessions start over, the cluster works without a node restart', async () => {
    const topic = uniq('t');
    const session = { clientId: uniq('ps'), clean: false, properties: { sessionExpiryInterval: 300 } };
    const sub = await connectMqtt(B.url, session);
    clients.push(sub.client);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    const pub = await connectMqtt(A.url);
    clients.push(pub.client);
    await untilRouted(pub.client, topic, [sub.inbox]);
    expect(await admin.get('{shoal}:layout')).toBe('3');
    const subClosed = new Promise<void>((resolve) => sub.client.once('close', () => resolve()));

    await redis.process.terminate(5_000);
    await redis.restart(); // empty: no AOF, no RDB
    await waitFor(
      async () => (await Promise.all([A.readyz(), B.readyz()])).every((s) => s === 200),
      20_000,
      '/readyz 200 on both',
    );
    // Their claims are gone from Redis: the clients are told to reconnect.
    await subClosed;
    // The nodes wrote their layout into the new data set: a node started now adopts it.
    expect(await admin.get('{shoal}:layout')).toBe('3');

    const again = await connectMqtt(A.url, session);
    clients.push(again.client);
    expect(again.client.connected).toBe(true);
    // Session Present 0: what it had was in the lost data set.
    const present = await new Promise<boolean>((resolve) => {
      const c = again.client as unknown as { connackPacket?: { sessionPresent?: boolean } };
      resolve(c.connackPacket?.sessionPresent === true);
    });
    expect(present).toBe(false);
    await again.client.subscribeAsync(topic, { qos: 1 });
    const pub2 = await connectMqtt(B.url);
    clients.push(pub2.client);
    await untilRouted(pub2.client, topic, [again.inbox]);
    await pub2.client.publishAsync(topic, 'after', { qos: 1 });
    await again.inbox.payload('after');
  }, 60_000);
});
