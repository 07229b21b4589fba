import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ShoalNode, startCluster, waitFor } from '../helpers/cluster.js';
import { haproxyBin } from '../helpers/haproxy.js';
import { freePort, waitForPort } from '../helpers/ports.js';
import { killAllTracked, spawnTracked } from '../helpers/processes.js';
import { type RedisHandle, redisClient, startRedis } from '../helpers/redis.js';

const CLIENTS = 24;
const RATE = 10;
const NOT_READY_DELAY_MS = 1500;
const SHUTDOWN_TIMEOUT_MS = 8000;
/** What Kubernetes / docker-compose would give the process before SIGKILL in this setup. */
const GRACE_MS = NOT_READY_DELAY_MS + SHUTDOWN_TIMEOUT_MS + 2000;

let redis: RedisHandle;
let admin: Redis;
let nodes: ShoalNode[];
let dir: string;
let lbPort: number;

interface Tracked {
  id: string;
  client: MqttClient;
  disconnects: { reasonCode?: number; at: number }[];
  connects: number;
  received: string[];
}
const tracked: Tracked[] = [];

beforeAll(async () => {
  redis = await startRedis();
  admin = redisClient(redis);
  nodes = await startCluster(3, redis.url, {
    drain: { ratePerSecond: RATE, notReadyDelayMs: NOT_READY_DELAY_MS },
    shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
    // Only HAProxy (on loopback) connects to the MQTT ports, always with a PROXY v2 header.
    proxyProtocol: { tcp: true, trustedProxies: ['127.0.0.1'] },
    mqtt: { sysIntervalSeconds: 0 },
  });
  lbPort = await freePort();
  dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-haproxy-'));
  const cfg = path.join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    `global
  maxconn 1000
defaults
  mode tcp
  timeout connect 2s
  timeout client 5m
  timeout server 5m
  timeout check 1s
  retries 3
  option redispatch
frontend mqtt
  bind 127.0.0.1:${lbPort}
  default_backend shoal
backend shoal
  balance roundrobin
  option httpchk GET /readyz
  http-check expect status 200
${nodes.map((n) => `  server ${n.nodeId} 127.0.0.1:${n.port} send-proxy-v2 check port ${n.httpPort} inter 250 fall 2 rise 2`).join('\n')}
`,
  );
  // Tracked: killAllTracked() ends it with the nodes.
  await spawnTracked(haproxyBin, ['-db', '-f', cfg], { name: 'haproxy' });
  await waitForPort(lbPort);
}, 60_000);

afterAll(async () => {
  await Promise.all(tracked.map((t) => t.client.endAsync(true).catch(() => undefined)));
  admin?.disconnect();
  await killAllTracked();
  await redis?.stop();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

/** Client ids a node's admin API lists (loopback: no token needed). */
async function clientsOn(node: ShoalNode): Promise<string[]> {
  const res = await fetch(`http://127.0.0.1:${node.httpPort}/api/v1/clients?limit=1000`);
  const body = (await res.json()) as { items: { clientId: string; connected: boolean }[] };
  return body.items.filter((c) => c.connected).map((c) => c.clientId);
}

function connect(i: number): Promise<Tracked> {
  const id = `drain-${i}`;
  const client = mqtt.connect(`mqtt://127.0.0.1:${lbPort}`, {
    clientId: id,
    protocolVersion: 5,
    reconnectPeriod: 250,
    connectTimeout: 5_000,
  });
  const t: Tracked = { id, client, disconnects: [], connects: 0, received: [] };
  client.on('error', () => undefined);
  client.on('disconnect', (p) => t.disconnects.push({ reasonCode: p.reasonCode, at: Date.now() }));
  client.on('message', (_topic, payload) => t.received.push(payload.toString()));
  tracked.push(t);
  return new Promise((resolve) => {
    client.on('connect', () => {
      t.connects++;
      // Subscribe again after each reconnect: a clean session starts empty on the new node.
      client.subscribe(`drain/${id}`, { qos: 1 });
      if (t.connects === 1) resolve(t);
    });
  });
}

describe('drain behind HAProxy', () => {
  it('moves the drained node’s clients to the other nodes with 0x8B and exits 0 in time', async () => {
    const all = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => connect(i)));
    // Round robin: every node holds clients.
    await waitFor(
      async () => (await Promise.all(nodes.map(clientsOn))).flat().length === CLIENTS,
      10_000,
      'all listed',
    );
    const [A, B, C] = nodes;
    const onA = new Set(await clientsOn(A));
    expect(onA.size).toBeGreaterThan(0);
    expect(onA.size).toBeLessThan(CLIENTS);
    const moved = all.filter((t) => onA.has(t.id));
    const stayed = all.filter((t) => !onA.has(t.id));

    const started = Date.now();
    expect(A.kill('SIGTERM')).toBe(true);
    await waitFor(async () => (await A.readyz()) !== 200, 2_000, 'A /readyz not 200');
    const exit = await A.process.exited;
    const took = Date.now() - started;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(took).toBeLessThan(GRACE_MS);

    // Every client of A was told why (0x8B), at the drain's pace, and none of the others was touched.
    for (const t of moved) expect(t.disconnects.map((d) => d.reasonCode)).toEqual([0x8b]);
    for (const t of stayed) expect(t.disconnects).toEqual([]);
    const times = moved.map((t) => t.disconnects[0].at);
    if (moved.length >= 4) {
      // n clients at RATE/s: about (n - 1) / RATE s from first to last, not one burst.
      expect(Math.max(...times) - Math.min(...times)).toBeGreaterThan(
        (((moved.length - 1) / RATE) * 1000) / 2,
      );
    }
    // The disconnects began only after /readyz had been 503 for notReadyDelayMs.
    expect(Math.min(...times) - started).toBeGreaterThanOrEqual(NOT_READY_DELAY_MS - 100);

    // They reconnected through HAProxy to B and C.
    await waitFor(() => moved.every((t) => t.connects >= 2 && t.client.connected), 10_000, 'reconnects');
    await waitFor(
      async () => {
        const now = new Set([...(await clientsOn(B)), ...(await clientsOn(C))]);
        return all.every((t) => now.has(t.id));
      },
      10_000,
      'every client on B or C',
    );

    // And they get messages there again (routes through Redis: poll until the subscription is known).
    const publisher = stayed[0].client;
    for (const t of moved) {
      const payload = `after-${t.id}`;
      await waitFor(
        () => {
          if (t.received.includes(payload)) return true;
          publisher.publish(`drain/${t.id}`, payload, { qos: 1 });
          return false;
        },
        10_000,
        `${t.id} receives after the move`,
      );
    }

    // Nothing of A is left in Redis: membership, routes, inbox.
    expect(await admin.zscore('{shoal}:nodes', A.nodeId)).toBeNull();
    expect(await admin.exists(`{shoal}:node-routes:${A.nodeId}`)).toBe(0);
    expect(await admin.exists(`shoal:inbox:{${A.nodeId}}`)).toBe(0);
    // The survivors see a two-node cluster, and measured the cluster traffic of all this.
    await waitFor(async () => (await B.metric('shoal_cluster_nodes')) === 2, 10_000, 'B sees 2 nodes');
    const scraped = [await B.metrics(), await C.metrics()];
    const sum = (prefix: string) =>
      scraped
        .flatMap((m) => Object.entries(m))
        .filter(([k]) => k.startsWith(prefix))
        .reduce((n, [, v]) => n + v, 0);
    expect(sum('shoal_redis_command_duration_seconds_count{command="xadd"}')).toBeGreaterThan(0);
    expect(sum('shoal_cluster_batch_size_count{kind="durable"}')).toBeGreaterThan(0);
    expect(sum('shoal_cluster_inbox_lag_seconds_count')).toBeGreaterThan(0);
    expect(sum('shoal_connections_total{listener="tcp",protocol="5"}')).toBeGreaterThanOrEqual(CLIENTS);
  }, 60_000);
});
