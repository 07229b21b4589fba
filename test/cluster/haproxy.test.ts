/**
 * Three Shoal nodes behind HAProxy in TCP mode (round robin), as CLUSTER.md draws them: clients
 * connect to the balancer only, land on different nodes, and every message between them arrives
 * whichever nodes the subscriber and the publishers ended up on.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  connectMqtt,
  endAll,
  type Inbox,
  type ShoalNode,
  startCluster,
  uniq,
  untilRouted,
  waitFor,
} from '../helpers/cluster.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { killAllTracked, spawnTracked, type TrackedProcess } from '../helpers/processes.js';
import { type RedisHandle, startRedis } from '../helpers/redis.js';

const HAPROXY = process.env.HAPROXY_BIN ?? '/usr/sbin/haproxy';

let redis: RedisHandle;
let nodes: ShoalNode[];
let haproxy: TrackedProcess;
let dir: string;
let lbUrl: string;
const clients: MqttClient[] = [];

beforeAll(async () => {
  redis = await startRedis();
  nodes = await startCluster(3, redis.url);
  dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-haproxy-'));
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    [
      'global',
      '  maxconn 256',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      'frontend mqtt',
      `  bind 127.0.0.1:${port}`,
      '  default_backend shoal',
      'backend shoal',
      '  balance roundrobin',
      ...nodes.map((n) => `  server ${n.nodeId} 127.0.0.1:${n.port}`),
      '',
    ].join('\n'),
  );
  // -db: stay in the foreground (no daemon), so the tracked PID is HAProxy itself.
  haproxy = await spawnTracked(HAPROXY, ['-f', cfg, '-db'], { name: 'haproxy' });
  try {
    await waitForPort(port, '127.0.0.1', 10_000);
  } catch (err) {
    throw new Error(`${String(err)}\nhaproxy output:\n${haproxy.output()}`);
  }
  lbUrl = `mqtt://127.0.0.1:${port}`;
}, 45_000);

afterAll(async () => {
  await endAll(...clients);
  await killAllTracked();
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('behind HAProxy (mode tcp, roundrobin)', () => {
  it('10 clients spread over the 3 nodes; messages from publishers on every node reach the subscriber', async () => {
    const base = uniq('lb');
    const conns: { client: MqttClient; inbox: Inbox }[] = [];
    // One at a time, so round robin hands them out in turn.
    for (let i = 0; i < 10; i++) {
      const c = await connectMqtt(lbUrl, { protocolVersion: i % 2 === 0 ? 5 : 4 });
      clients.push(c.client);
      conns.push(c);
    }
    // A node counts a client once its CONNECT is processed; CONNACK has arrived, so it is.
    const connected = await Promise.all(nodes.map((n) => n.metric('shoal_clients_connected')));
    expect(connected.reduce((a, b) => a + b, 0)).toBe(10);
    for (const k of connected) expect(k).toBeGreaterThanOrEqual(3);

    const [sub, ...pubs] = conns;
    await sub.client.subscribeAsync(`${base}/#`, { qos: 2 });
    // Each publisher's node must know the subscriber's route before counting starts.
    await Promise.all(pubs.map((p, i) => untilRouted(p.client, `${base}/probe/${i}`, [sub.inbox])));

    const perPublisher = 30;
    const expected: string[] = [];
    await Promise.all(
      pubs.map(async (p, i) => {
        for (let j = 0; j < perPublisher; j++) {
          const qos = (j % 3) as 0 | 1 | 2;
          expected.push(`p${i}-${j}`);
          await p.client.publishAsync(`${base}/p${i}`, `p${i}-${j}`, { qos });
        }
      }),
    );
    await sub.inbox.dataCount(expected.length, 15_000);
    const got = sub.inbox.data.map((m) => m.payload);
    expect([...got].sort()).toEqual([...expected].sort());
    // Per publisher, in order (guarantee 6 holds per QoS; here also across QoS on one path).
    for (let i = 0; i < pubs.length; i++) {
      const mine = got.filter((p) => p.startsWith(`p${i}-`));
      for (const qos of [0, 1, 2]) {
        const q = mine.filter((p) => Number(p.split('-')[1]) % 3 === qos);
        expect(q).toEqual([...q].sort((a, b) => Number(a.split('-')[1]) - Number(b.split('-')[1])));
      }
    }
    // The balancer spread the traffic: at least two nodes sent to other nodes.
    const sent = await Promise.all(nodes.map((n) => n.metric('shoal_cluster_messages_sent_total')));
    expect(sent.filter((k) => k > 0).length).toBeGreaterThanOrEqual(2);

    await endAll(...clients.splice(0));
    await waitFor(
      async () =>
        (await Promise.all(nodes.map((n) => n.metric('shoal_clients_connected')))).every((k) => k === 0),
      5_000,
      'every node to see its clients gone',
    );
  }, 45_000);
});
