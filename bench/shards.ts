/**
 * Where a Shoal cluster's Redis work lands on a Redis Cluster of 3 masters (#13.6): two Shoal nodes
 * on a fresh 3-master / 3-replica Redis Cluster, then one path at a time, each master's
 * `INFO commandstats` reset before it and read after it:
 *
 *   connect     persistent clients (3.1.1 Clean Session 0) connect and disconnect, half on each node
 *   subscribe   one client on node a subscribes distinct filters, 100 per SUBSCRIBE
 *   retained    retained QoS 1 messages to distinct topics
 *   publish     QoS 1 from node a to a clean-session subscriber on node b
 *   persistent  QoS 1 from node a to persistent-session subscribers on node b (one queue each)
 *
 * For each path it prints the share of the Redis commands (Lua's calls counted) each master ran,
 * and at the end each master's used_memory. The target of #13.6 is that no master takes more than
 * half of any path. A shard's keys are those of its slots: everything in the `{shoal}` slot (routes,
 * the route and retained logs, retained messages, the node set) is on one master.
 *
 *   npm run bench:shards -- [--clients N] [--filters N] [--retained N] [--messages N]
 */
import { join } from 'node:path';
import { Redis } from 'ioredis';
import mqtt, { type MqttClient } from 'mqtt';
import { startRedisCluster } from '../test/helpers/redis-topologies.js';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { markdownTable } from './lib/table.js';
import { startClusterNode } from './servers/cluster-node.js';
import { prepareLaunchers, type RunningServer } from './servers/index.js';
import { commandCalls, commandsBetween, readInfo } from './servers/redis.js';

const argv = process.argv.slice(2);
function usage(message: string): never {
  console.error(`bench:shards: ${message}`);
  console.error('usage: npm run bench:shards -- [--clients N] [--filters N] [--retained N] [--messages N]');
  process.exit(2);
}
const { num } = parseArgs(
  argv,
  new Set(),
  new Set(['--clients', '--filters', '--retained', '--messages']),
  usage,
);
const clients = num('--clients', 500, 10, 5_000);
const filters = num('--filters', 5_000, 100, 100_000);
const retained = num('--retained', 2_000, 10, 50_000);
const messages = num('--messages', 5_000, 100, 100_000);
const SUBSCRIBERS = 30;

const runDir = guardRun('bench:shards', 10 * 60_000);
console.log(commandLine('bench:shards', 'bench/shards.ts', argv));
const launchers = await prepareLaunchers({ buildDir: join(runDir, 'build') });

const cluster = await startRedisCluster();
const nodes: RunningServer[] = [];
const open: MqttClient[] = [];
const admins: Redis[] = [];
try {
  // The masters, in port order: shard 1, 2, 3.
  const all = cluster.nodes.map((n) => new Redis({ host: n.host, port: n.port, lazyConnect: false }));
  admins.push(...all);
  const roles = await Promise.all(all.map((c) => c.role()));
  const masters = all.filter((_c, i) => roles[i][0] === 'master');
  if (masters.length !== 3) throw new Error(`expected 3 masters, found ${masters.length}`);
  const label = (i: number) => `master ${i + 1} (:${masters[i].options.port})`;
  const memory0 = await Promise.all(masters.map(usedMemory));

  nodes.push(
    ...(await Promise.all(
      ['a', 'b'].map((l) => startClusterNode(launchers, 'shoal-cluster', l, cluster.url)),
    )),
  );
  const url = (i: number) => `mqtt://127.0.0.1:${nodes[i].port}`;
  const connect = async (node: number, clientId: string, clean: boolean): Promise<MqttClient> => {
    const c = mqtt.connect(url(node), {
      clientId,
      clean,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
    });
    open.push(c);
    await new Promise<void>((resolve, reject) => {
      c.once('connect', () => resolve());
      c.once('error', reject);
    });
    return c;
  };
  const end = (c: MqttClient) => new Promise<void>((r) => c.end(false, {}, () => r()));
  const received = (c: MqttClient, n: number) =>
    new Promise<void>((resolve, reject) => {
      let got = 0;
      const timer = setTimeout(() => reject(new Error(`only ${got} of ${n} messages arrived`)), 60_000);
      c.on('message', () => {
        if (++got === n) {
          clearTimeout(timer);
          resolve();
        }
      });
    });

  const rows: string[][] = [];
  const measure = async (path: string, what: string, run: () => Promise<void>) => {
    await Promise.all(masters.map((m) => m.config('RESETSTAT')));
    const before = await Promise.all(
      masters.map(async (m) => commandCalls(await readInfo(m, 'commandstats'))),
    );
    const t0 = Date.now();
    await run();
    const ms = Date.now() - t0;
    const after = await Promise.all(
      masters.map(async (m) => commandCalls(await readInfo(m, 'commandstats'))),
    );
    const calls = masters.map((_m, i) => commandsBetween(before[i], after[i]));
    const total = calls.reduce((a, b) => a + b, 0);
    const shares = calls.map((c) => (total > 0 ? (100 * c) / total : 0));
    const top = Math.max(...shares);
    rows.push([
      path,
      what,
      ...shares.map((s, i) => `${s.toFixed(1)} % (${calls[i]})`),
      `${top.toFixed(1)} %`,
      top <= 50 ? 'met' : 'not met',
      `${(ms / 1000).toFixed(1)} s`,
    ]);
    console.error(
      `[${path}] ${shares.map((s) => `${s.toFixed(1)}%`).join(' / ')} of ${total} commands (${ms} ms)`,
    );
  };

  await measure('connect', `${clients} persistent clients connect and leave`, async () => {
    for (let i = 0; i < clients; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, clients - i) }, (_, j) =>
          connect((i + j) % 2, `shard-c${i + j}`, false),
        ),
      );
      await Promise.all(batch.map(end));
    }
  });

  const subscriber = await connect(0, 'shard-subscriber', true);
  await measure('subscribe', `${filters} distinct filters, 100 per SUBSCRIBE`, async () => {
    for (let i = 0; i < filters; i += 100) {
      const batch = Array.from({ length: Math.min(100, filters - i) }, (_, j) => `shard/f/${i + j}`);
      await subscriber.subscribeAsync(batch, { qos: 0 });
    }
  });

  const publisher = await connect(0, 'shard-publisher', true);
  await measure('retained', `${retained} retained QoS 1 messages, distinct topics`, async () => {
    for (let i = 0; i < retained; i += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, retained - i) }, (_, j) =>
          publisher.publishAsync(`shard/r/${i + j}`, 'r', { qos: 1, retain: true }),
        ),
      );
    }
  });

  const clean = await connect(1, 'shard-clean', true);
  await clean.subscribeAsync('shard/p', { qos: 1 });
  await measure('publish', `${messages} QoS 1 messages, a → clean subscriber on b`, async () => {
    const done = received(clean, messages);
    for (let i = 0; i < messages; i += 100)
      await Promise.all(
        Array.from({ length: Math.min(100, messages - i) }, () =>
          publisher.publishAsync('shard/p', 'm', { qos: 1 }),
        ),
      );
    await done;
  });

  const persistent = await Promise.all(
    Array.from({ length: SUBSCRIBERS }, (_, i) => connect(1, `shard-p${i}`, false)),
  );
  await Promise.all(persistent.map((c) => c.subscribeAsync('shard/q', { qos: 1 })));
  const perSub = Math.max(1, Math.floor(messages / SUBSCRIBERS));
  await measure(
    'persistent',
    `${perSub} QoS 1 messages, a → ${SUBSCRIBERS} persistent subscribers on b`,
    async () => {
      const done = Promise.all(persistent.map((c) => received(c, perSub)));
      for (let i = 0; i < perSub; i += 50)
        await Promise.all(
          Array.from({ length: Math.min(50, perSub - i) }, () =>
            publisher.publishAsync('shard/q', 'm', { qos: 1 }),
          ),
        );
      await done;
    },
  );

  const memory1 = await Promise.all(masters.map(usedMemory));
  rows.push([
    'memory',
    'used_memory growth over the run',
    ...memory1.map((m, i) => `${((m - memory0[i]) / 1024).toFixed(0)} KB`),
    '',
    '',
    '',
  ]);
  console.log(
    markdownTable(
      ['Path', 'What', label(0), label(1), label(2), 'Largest share', 'Target ≤ 50 %', 'Took'],
      rows,
    ),
  );
} finally {
  for (const c of open) c.end(true);
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  for (const a of admins) a.disconnect();
  await cluster.stop();
}

async function usedMemory(r: Redis): Promise<number> {
  return Number((await readInfo(r, 'memory')).used_memory ?? 0);
}
