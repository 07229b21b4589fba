import mqtt, { type MqttClient } from 'mqtt';
import { describe, expect, it } from 'vitest';
import {
  connectMqtt,
  type Inbox,
  type ShoalNode,
  startNode,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { clusterPerFile } from '../helpers/cluster-fixture.js';

const {
  redis,
  admin,
  nodes: [A, B, C],
  clients,
} = clusterPerFile({ nodes: 3, config: { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } } });

/** Resolves with the reason code of the DISCONNECT the broker sends (or -1 when it just closes). */
function disconnected(client: MqttClient): Promise<number> {
  return new Promise((resolve) => {
    client.once('disconnect', (p) => resolve(p.reasonCode ?? 0));
    client.once('close', () => resolve(-1));
  });
}

describe('ownership and takeover across nodes', () => {
  it('[MQTT-3.1.4-3] a CONNECT on another node takes the client over: the old connection gets DISCONNECT 0x8E', async () => {
    const id = uniq('x');
    const old = await connectMqtt(A.url, { clientId: id });
    clients.push(old.client);
    const kicked = disconnected(old.client);
    const started = Date.now();
    const fresh = await connectMqtt(B.url, { clientId: id });
    clients.push(fresh.client);
    const took = Date.now() - started;
    expect(await kicked).toBe(0x8e);
    expect(fresh.client.connected).toBe(true);
    // The takeover completes in one round trip to the old node; bounded generously for a busy machine.
    expect(took).toBeLessThan(2000);
    expect(await B.metric('shoal_clients_connected')).toBeGreaterThanOrEqual(1);
  });

  it('[MQTT-3.1.4-2] 1,000 racing CONNECTs of the same ids on three nodes end with exactly one live connection per id', async () => {
    // 334 ids, each connecting on all three nodes at once; half with a persistent session, so the
    // session is claimed and loaded by the racers too.
    const ids = Array.from({ length: 334 }, () => uniq('race'));
    const nodes = [A, B, C];
    const attempts: { id: string; client: MqttClient; closed: boolean }[] = [];
    await Promise.all(
      ids.flatMap((id) =>
        nodes.map(async (node) => {
          const persistent = ids.indexOf(id) % 2 === 0;
          const client = mqtt.connect(node.url, {
            clientId: id,
            protocolVersion: 5,
            reconnectPeriod: 0,
            connectTimeout: 20_000,
            clean: !persistent,
            properties: persistent ? { sessionExpiryInterval: 60 } : undefined,
          });
          const entry = { id, client, closed: false };
          attempts.push(entry);
          clients.push(client);
          client.on('error', () => undefined);
          client.on('close', () => {
            entry.closed = true;
          });
          await new Promise<void>((resolve) => {
            client.once('connect', () => resolve());
            client.once('close', () => resolve());
          });
        }),
      ),
    );
    // Losers are told (0x8E, or CONNACK refusal) and closed; wait until each id has one connection left.
    await waitFor(
      () =>
        ids.every(
          (id) => attempts.filter((a) => a.id === id && !a.closed && a.client.connected).length === 1,
        ),
      20_000,
      'one live connection per id',
    );
    for (const id of ids) {
      expect(attempts.filter((a) => a.id === id && !a.closed && a.client.connected)).toHaveLength(1);
    }
    // And the cluster agrees on the total.
    const total = (await Promise.all(nodes.map((n) => n.metric('shoal_clients_connected')))).reduce(
      (a, b) => a + b,
      0,
    );
    expect(total).toBeGreaterThanOrEqual(ids.length);
  }, 60_000);

  it('(fencing) a paused former owner is fenced out: after SIGCONT its connection closes and the new owner keeps the id', async () => {
    const P = await fastNode('paused');
    const id = uniq('fenced');
    const old = await connectMqtt(P.url, { clientId: id, keepalive: 0 });
    clients.push(old.client);
    const kicked = disconnected(old.client);
    P.kill('SIGSTOP');
    try {
      // The paused node cannot answer: the new owner waits at most the liveness timeout, then owns it.
      const fresh = await connectMqtt(A.url, { clientId: id });
      clients.push(fresh.client);
      expect(fresh.client.connected).toBe(true);
    } finally {
      P.kill('SIGCONT');
    }
    // Back, the paused node learns of the newer epoch and closes its connection.
    expect(await kicked).toBe(0x8e);
    await P.stop();
  }, 30_000);
});

/** A node of its own with a short liveness timeout, to be killed or paused by the test. */
function fastNode(prefix: string): Promise<ShoalNode> {
  return startNode({
    redisUrl: redis.url,
    nodeId: uniq(prefix),
    config: { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } },
  });
}

/** A watcher on `node` of `<topic>/#` and a publisher on B that reaches it. */
async function watchWills(node: ShoalNode) {
  const topic = uniq('will');
  const watcher = await connectMqtt(node.url);
  clients.push(watcher.client);
  await watcher.client.subscribeAsync(`${topic}/#`, { qos: 1 });
  const { client: pub } = await connectMqtt(B.url);
  clients.push(pub);
  await untilRouted(pub, `${topic}/probe`, [watcher.inbox]);
  return { topic, watcher, pub };
}

/** Waits until the will of `clientId` is in Redis (it is stored right after CONNACK). */
function willStored(clientId: string): Promise<void> {
  return waitFor(
    async () => (await admin.hexists(`shoal:owner:{${clientId}}`, 'will')) === 1,
    5000,
    'the will stored',
  );
}

/**
 * How many wills with `payload` the watcher got: counted once a marker published afterwards arrived,
 * so no will still on its way is missed.
 */
async function willsSeen(pub: MqttClient, watcher: { inbox: Inbox }, topic: string, payload: string) {
  await pub.publishAsync(`${topic}/status`, 'marker', { qos: 1 });
  await watcher.inbox.payload('marker');
  return watcher.inbox.data.filter((m) => m.payload === payload).length;
}

describe('wills survive their node', () => {
  it('[MQTT-3.1.2-8] the will of a client whose node is killed is published once by a survivor', async () => {
    const D = await fastNode('doomed');
    const { topic, watcher, pub } = await watchWills(A);

    const victimId = uniq('victim');
    const victim = await connectMqtt(D.url, {
      clientId: victimId,
      will: { topic: `${topic}/status`, payload: Buffer.from('offline'), qos: 1, retain: false },
    });
    clients.push(victim.client);
    // Let the will reach Redis before the node dies (it is stored right after CONNACK).
    await willStored(victimId);
    const started = Date.now();
    D.kill('SIGKILL');
    await watcher.inbox.payload('offline', 15_000);
    const took = Date.now() - started;
    // Within the liveness timeout plus one heartbeat and the reaping itself.
    expect(took).toBeLessThan(6000);
    // Exactly once: a marker published afterwards arrives, and no second will arrived before it.
    expect(await willsSeen(pub, watcher, topic, 'offline')).toBe(1);
  }, 30_000);

  it('[MQTT-3.1.3-9] a delayed will is not published when the session resumes on another node within the delay', async () => {
    const { topic, watcher, pub } = await watchWills(C);
    const id = uniq('delayed');
    const session = { clean: false, properties: { sessionExpiryInterval: 60 } };
    const first = await connectMqtt(A.url, {
      clientId: id,
      ...session,
      will: {
        topic: `${topic}/status`,
        payload: Buffer.from('gone'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 2 },
      },
    });
    await willStored(id);
    first.client.stream.destroy(); // abnormal close: the will is due in 2 s
    const again = await connectMqtt(B.url, { clientId: id, ...session });
    clients.push(again.client);
    expect(again.client.connected).toBe(true);
    // Past the delay (and a margin), a marker arrives and no will came before it.
    await new Promise((r) => setTimeout(r, 3000));
    expect(await willsSeen(pub, watcher, topic, 'gone')).toBe(0);
  }, 30_000);

  it('[MQTT-3.1.3-9] the delayed will of a client whose node is killed is published once, within liveness timeout + delay', async () => {
    const D = await fastNode('doomed');
    const { topic, watcher, pub } = await watchWills(A);
    const id = uniq('victim');
    const victim = await connectMqtt(D.url, {
      clientId: id,
      clean: false,
      properties: { sessionExpiryInterval: 60 },
      will: {
        topic: `${topic}/status`,
        payload: Buffer.from('offline'),
        qos: 1,
        retain: false,
        properties: { willDelayInterval: 1 },
      },
    });
    clients.push(victim.client);
    await willStored(id);
    const started = Date.now();
    D.kill('SIGKILL');
    await watcher.inbox.payload('offline', 15_000);
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(1000); // not before its delay
    expect(took).toBeLessThan(1500 + 1000 + 3000); // liveness + delay + reaping on a busy machine
    expect(await willsSeen(pub, watcher, topic, 'offline')).toBe(1);
  }, 30_000);
});
