import type { MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import { connectMqtt, endAll, type Inbox, type ShoalNode, uniq } from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const CONFIG = { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } };

const {
  admin,
  nodes: [A, B],
  clients,
} = clusterPerFile({ nodes: 3, config: CONFIG });

async function conn(node: ShoalNode, opts: Parameters<typeof connectMqtt>[1] = {}) {
  const c = await connectMqtt(node.url, opts);
  clients.push(c.client);
  return c;
}

/** Subscribes on B, publishes one QoS 1 message on A at SUBACK; true when it arrived within 2 s. */
async function firstArrives(
  pub: MqttClient,
  sub: { client: MqttClient; inbox: Inbox },
  filter: string,
  topic: string,
): Promise<boolean> {
  await sub.client.subscribeAsync(filter, { qos: 1 });
  await pub.publishAsync(topic, 'first', { qos: 1 });
  return sub.inbox.payload('first', 2000).then(
    () => true,
    () => false,
  );
}

describe('SUBACK means routed on every live node (guarantee 8)', () => {
  it('(guarantee 8) 100 rounds: a message published on A right after SUBACK on B arrives, clean sessions', async () => {
    const pub = await conn(A);
    let lost = 0;
    for (let i = 0; i < 100; i++) {
      const topic = uniq('rr');
      const sub = await conn(B);
      if (!(await firstArrives(pub.client, sub, topic, topic))) lost++;
      await endAll(clients.pop());
    }
    expect(lost).toBe(0);
  });

  it('(guarantee 8) 30 rounds each: persistent sessions (session routes) and shared subscriptions', async () => {
    const pub = await conn(A);
    let lost = 0;
    for (let i = 0; i < 30; i++) {
      const topic = uniq('rp');
      const sub = await conn(B, {
        clientId: uniq('ps'),
        clean: false,
        properties: { sessionExpiryInterval: 60 },
      });
      if (!(await firstArrives(pub.client, sub, topic, topic))) lost++;
      const shared = await conn(B);
      const other = uniq('rs');
      if (!(await firstArrives(pub.client, shared, `$share/g/${other}`, other))) lost++;
    }
    expect(lost).toBe(0);
  });

  it('(guarantee 8) a route Redis cannot store gives a failure SUBACK (0x80), not a success nobody routes to', async () => {
    const sub = await conn(B);
    // B's part of the route table made unwritable: every route-add.lua fails (WRONGTYPE) until it
    // is given back.
    const routes = `{shoal}:node-routes:${B.nodeId}`;
    const kept = await admin.dump(routes);
    await admin.del(routes);
    await admin.set(routes, 'not a set');
    try {
      // MQTT 5: reason code 0x80 (Unspecified error) for that filter; mqtt.js rejects on it.
      await expect(sub.client.subscribeAsync(uniq('nf'), { qos: 1 })).rejects.toThrow(/Unspecified error/);
    } finally {
      await admin.del(routes);
      if (kept !== null) await admin.restore(routes, 0, kept);
    }
  });
});
