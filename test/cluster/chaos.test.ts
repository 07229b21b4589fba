/**
 * Chaos tests for guarantee 2 of CLUSTER.md (no acknowledged message lost for a persistent session)
 * with three Shoal processes, one Redis and HAProxy: kill -9 of the subscriber's node during QoS 1
 * and QoS 2 traffic, the client coming back directly or through the balancer, and a rolling restart
 * of every node (SIGTERM in turn) under load. Every message acknowledged to its publisher must reach
 * the subscriber; QoS 1 duplicates carry DUP; QoS 2 arrives exactly once. Bounded in count and time.
 */
import type { Redis } from 'ioredis';
import mqtt, { type MqttClient, Store } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectMqtt,
  endAll,
  Inbox,
  type Received,
  type ShoalNode,
  startCluster,
  startNode,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { type Balancer, startHaproxy } from '../helpers/haproxy.js';
import { killAllTracked } from '../helpers/processes.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

const CONFIG = { cluster: { heartbeatMs: 200, livenessTimeoutMs: 1500 } };
const SESSION = { clean: false, properties: { sessionExpiryInterval: 600 } } as const;

let redis: RedisHandle;
let admin: Redis;
let nodes: ShoalNode[];
let lb: Balancer | undefined;

beforeAll(async () => {
  redis = await startRedis();
  admin = redisClient(redis);
  nodes = await startCluster(3, redis.url, CONFIG);
  lb = await startHaproxy(nodes, { check: true });
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await lb?.stop();
  await killAllTracked();
  await redis?.stop();
});

const clients: MqttClient[] = [];
afterEach(async () => {
  await endAll(...clients.splice(0));
  // A test that failed half-way leaves its victim down: the next test starts with every node up.
  for (const n of [...nodes]) if (!n.process.running) await restart(n);
});

function byId(id: string): ShoalNode {
  const n = nodes.find((x) => x.nodeId === id);
  if (n === undefined) throw new Error(`no node ${id}`);
  return n;
}

/** The node serving a persistent session, as Redis says. */
async function servingNode(clientId: string): Promise<ShoalNode> {
  const on = await admin.hget(`shoal:sess:{${clientId}}`, 'on');
  return byId(on ?? '');
}

/** Restarts a killed or stopped node with the same id and port (the balancer knows it by its port). */
async function restart(node: ShoalNode): Promise<void> {
  const fresh = await startNode({
    redisUrl: redis.url,
    nodeId: node.nodeId,
    config: CONFIG,
    port: node.port,
  });
  nodes[nodes.indexOf(node)] = fresh;
}

/** What Redis and the nodes say about a session that is missing messages. */
async function diagnose(clientId: string, missing: string[]): Promise<string> {
  const [sess, inflight, queued] = await Promise.all([
    admin.hgetall(`shoal:sess:{${clientId}}`),
    admin.hgetall(`shoal:inf:{${clientId}}`),
    admin.xrange(`shoal:q:{${clientId}}`, '-', '+', 'COUNT', 20),
  ]);
  const logs = nodes.map(
    (n) =>
      `--- ${n.nodeId}\n${n.process
        .output()
        .split('\n')
        .filter((l) => /"level":[456]0/.test(l))
        .slice(-15)
        .join('\n')}`,
  );
  return [
    `missing ${missing.length}: ${missing.slice(0, 10).join(', ')}`,
    `session ${JSON.stringify(sess)}`,
    `in flight ${JSON.stringify(inflight)}`,
    `queued ${queued.length}: ${queued.map(([id]) => id).join(', ')}`,
    ...logs,
  ].join('\n');
}

/**
 * Every acknowledged payload arrived; a repeated delivery carries DUP (QoS 1) or there is none
 * (QoS 2); first deliveries keep the publishing order (guarantee 6). `republished`: the publisher
 * itself reconnected and re-sent unacknowledged messages, which are new publications (no DUP).
 */
function checkDelivery(
  acked: readonly string[],
  received: readonly Received[],
  qos: 1 | 2,
  republished = false,
): void {
  const seen = new Map<string, number>();
  const firsts: number[] = [];
  for (const m of received) {
    const n = seen.get(m.payload) ?? 0;
    seen.set(m.payload, n + 1);
    if (n === 0) firsts.push(Number(m.payload.split('-').pop()));
    else if (qos === 1) {
      if (!republished) expect(m.dup, `repeated ${m.payload} without DUP`).toBe(true);
    } else expect.fail(`QoS 2 message ${m.payload} delivered twice`);
  }
  const missing = acked.filter((p) => !seen.has(p));
  expect(missing, 'acknowledged but never delivered').toEqual([]);
  expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
}

/**
 * Publishes `count` messages one after another; `acked` collects those the broker acknowledged.
 * `at(i)` runs before message i (the fault is injected there).
 */
async function publishSeries(
  pub: MqttClient,
  topic: string,
  count: number,
  qos: 1 | 2,
  acked: string[],
  at?: (i: number) => void,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    at?.(i);
    const payload = `${topic}-${i}`;
    await pub.publishAsync(topic, payload, { qos });
    acked.push(payload);
  }
}

describe('kill -9 of the subscriber node', () => {
  for (const [qos, via] of [
    [1, 'directly'],
    [2, 'directly'],
    [1, 'through HAProxy'],
    [2, 'through HAProxy'],
  ] as const) {
    it(`QoS ${qos}, reconnecting ${via}: every acknowledged message arrives${qos === 1 ? ', repeats with DUP' : ' exactly once'}`, async () => {
      const id = uniq('chaos');
      const topic = uniq('k');
      const entry = via === 'directly' ? nodes[0].url : lb!.url;
      // The client keeps its own session state across connections (MQTT 4.1): mqtt.js delivers a
      // QoS 2 message on PUBREL from the PUBLISH it stored, so the reconnecting client shares it.
      const incomingStore = new Store();
      const sub = await connectMqtt(entry, { clientId: id, ...SESSION, incomingStore });
      clients.push(sub.client);
      const victim = await servingNode(id);
      // The publisher is on another node, which survives.
      const pubNode = nodes.find((n) => n !== victim)!;
      const pub = await connectMqtt(pubNode.url);
      clients.push(pub.client);
      await sub.client.subscribeAsync(topic, { qos });
      await untilRouted(pub.client, topic, [sub.inbox]);

      const acked: string[] = [];
      const count = 400;
      let killed = false;
      const publishing = publishSeries(pub.client, topic, count, qos, acked, (i) => {
        if (i === 150) {
          killed = victim.kill('SIGKILL');
        }
      });
      const closed = new Promise<void>((resolve) => sub.client.once('close', () => resolve()));
      await closed;
      expect(killed).toBe(true);
      // Back through a survivor (the balancer skips the dead server), while publishing goes on.
      const survivor = nodes.find((n) => n !== victim && n !== pubNode)!;
      const again = await connectMqtt(via === 'directly' ? survivor.url : lb!.url, {
        clientId: id,
        ...SESSION,
        incomingStore,
      });
      clients.push(again.client);
      expect(again.client.connected).toBe(true);
      await publishing;
      const all = () => [...sub.inbox.data, ...again.inbox.data];
      const missing = () => {
        const got = new Set(all().map((m) => m.payload));
        return acked.filter((p) => !got.has(p));
      };
      try {
        await waitFor(
          () => missing().length === 0,
          20_000,
          `all ${acked.length} acknowledged messages delivered`,
        );
      } catch (err) {
        throw new Error(`${String(err)}\n${await diagnose(id, missing())}`);
      }
      checkDelivery(acked, all(), qos);
      expect(acked.length).toBe(count);
    }, 60_000);
  }
});

describe('a node cut off past the liveness timeout', () => {
  it('(partition, simulated by SIGSTOP) the node is reaped, the messages of its persistent client wait in Redis; back, the node drops its clients, which resume elsewhere', async () => {
    const id = uniq('cut');
    const topic = uniq('c');
    const victim = nodes[1];
    const incomingStore = new Store();
    const sub = await connectMqtt(victim.url, { clientId: id, ...SESSION, incomingStore });
    clients.push(sub.client);
    const pub = await connectMqtt(nodes[0].url);
    clients.push(pub.client);
    await sub.client.subscribeAsync(topic, { qos: 1 });
    await untilRouted(pub.client, topic, [sub.inbox]);
    const closed = new Promise<void>((resolve) => sub.client.once('close', () => resolve()));

    victim.kill('SIGSTOP');
    try {
      await waitFor(
        async () => (await admin.zscore('{shoal}:nodes', victim.nodeId)) === null,
        10_000,
        `${victim.nodeId} reaped`,
      );
      // Its session is offline now: publishing goes on, into the session's queue.
      for (let i = 0; i < 50; i++) await pub.client.publishAsync(topic, `${topic}-${i}`, { qos: 1 });
      expect(await admin.hget(`shoal:sess:{${id}}`, 'on')).toBe('');
    } finally {
      victim.kill('SIGCONT');
    }
    // Back, the node finds it was reaped: its claims are void, so it closes its connections.
    await closed;
    const again = await connectMqtt(nodes[2].url, { clientId: id, ...SESSION, incomingStore });
    clients.push(again.client);
    await again.inbox.dataCount(50);
    checkDelivery(
      Array.from({ length: 50 }, (_, i) => `${topic}-${i}`),
      [...sub.inbox.data, ...again.inbox.data],
      1,
    );
  }, 60_000);
});

describe('rolling restart behind HAProxy', () => {
  it('each node SIGTERMed in turn under QoS 1 load: no message for persistent sessions lost', async () => {
    const topic = uniq('roll');
    const subscribers: { client: MqttClient; inbox: Inbox }[] = [];
    for (let i = 0; i < 6; i++) {
      // Clients as deployed: reconnect on their own, through the balancer, to their stored session.
      const client = mqtt.connect(lb!.url, {
        clientId: uniq('rs'),
        protocolVersion: 5,
        reconnectPeriod: 100,
        connectTimeout: 5_000,
        ...SESSION,
      });
      client.on('error', () => undefined);
      clients.push(client);
      const inbox = new Inbox(client);
      await new Promise<void>((resolve) => client.once('connect', () => resolve()));
      await client.subscribeAsync(topic, { qos: 1 });
      subscribers.push({ client, inbox });
    }
    const pub = mqtt.connect(lb!.url, {
      clientId: uniq('rp'),
      protocolVersion: 5,
      reconnectPeriod: 100,
      ...SESSION,
    });
    pub.on('error', () => undefined);
    clients.push(pub);
    await new Promise<void>((resolve) => pub.once('connect', () => resolve()));
    await untilRouted(
      pub,
      topic,
      subscribers.map((s) => s.inbox),
    );

    const acked: string[] = [];
    let stop = false;
    // Bounded: at most 20,000 messages, ended when the restarts are done.
    const load = (async () => {
      for (let i = 0; i < 20_000 && !stop; i++) {
        const payload = `${topic}-${i}`;
        try {
          await pub.publishAsync(topic, payload, { qos: 1 });
          acked.push(payload);
        } catch {
          // not acknowledged: the client gave up on it; nothing is promised for it
        }
      }
    })();
    for (const node of [...nodes]) {
      await waitFor(() => acked.length >= 200, 20_000, 'traffic before the restart');
      const mark = acked.length;
      const exit = await node.stop(); // SIGTERM: drain, then exit
      expect(exit.code).toBe(0);
      await restart(node);
      await waitFor(() => acked.length >= mark + 200, 20_000, `traffic after ${node.nodeId} restarted`);
    }
    stop = true;
    await load;
    for (const s of subscribers) {
      await waitFor(
        () => {
          const got = new Set(s.inbox.data.map((m) => m.payload));
          return acked.every((p) => got.has(p));
        },
        20_000,
        `all ${acked.length} acknowledged messages at one subscriber`,
      );
      checkDelivery(acked, s.inbox.data, 1, true);
    }
  }, 120_000);
});
