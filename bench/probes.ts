/**
 * Cluster fault probes (issue #11): three things a user of a clustered broker hits, measured on a
 * Shoal cluster beside Aedes + Redis (mqemitter-redis + aedes-persistence-redis), 3 nodes each on
 * a fresh redis-server, default settings:
 *
 *   subscribe  N rounds: a fresh subscriber on B subscribes to a fresh topic (QoS 1); the moment its
 *              SUBACK arrives, a publisher on A publishes one QoS 1 message. Counts first messages
 *              lost (not there within 2 s) and the SUBACK latency (what "routed everywhere" costs).
 *   neighbour  a subscriber on B stops reading its socket while a flood goes to its topic; then
 *              200 QoS 1 from A to another topic, subscribed by a healthy subscriber on B: how many
 *              arrive within 5 s.
 *   crash      a persistent QoS 1 subscriber (3.1.1, Clean Session 0) on B; a publisher on A at
 *              about 2 k msg/s; B is killed with SIGKILL and the subscriber reconnects through C at
 *              once. Time from the kill to CONNACK; acknowledged messages lost; duplicates.
 *
 *   npm run bench:probes -- [--rounds N] [--contenders shoal-cluster,aedes-cluster]
 *                           [--probes subscribe,neighbour,crash]
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median, percentile } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { startClusterNode } from './servers/cluster-node.js';
import { prepareLaunchers, type RunningServer } from './servers/index.js';
import { startRedis } from './servers/redis.js';

type Contender = 'shoal-cluster' | 'aedes-cluster';
const CONTENDERS: readonly Contender[] = ['shoal-cluster', 'aedes-cluster'];
type Probe = 'subscribe' | 'neighbour' | 'crash';
const PROBES: readonly Probe[] = ['subscribe', 'neighbour', 'crash'];
const argv = process.argv.slice(2);
const args = parseArgs(argv, new Set(), new Set(['--rounds', '--contenders', '--probes']), (problem) => {
  console.error(`bench:probes: ${problem}`);
  console.error(
    'usage: npm run bench:probes -- [--rounds N] [--contenders shoal-cluster,aedes-cluster] [--probes subscribe,neighbour,crash]',
  );
  process.exit(2);
});
const rounds = args.num('--rounds', 100, 1, 1000);
const contenders = args.list('--contenders', CONTENDERS);
const probes = args.list('--probes', PROBES);
const PREFIX = { raiseNofile: true };
const START_TIMEOUT_MS = 15_000;

const runDir = guardRun('bench:probes', 15 * 60_000);
const launchers = await prepareLaunchers({ buildDir: join(runDir, 'build') });

function startNode(c: Contender, label: string, redisUrl: string): Promise<RunningServer> {
  return startClusterNode(launchers, c, label, redisUrl);
}

function connect(port: number, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 10_000,
      ...opts,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
    client.on('error', () => undefined);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves true once `done()` holds, false after `ms`; checked every 5 ms. */
async function within(ms: number, done: () => boolean): Promise<boolean> {
  const end = performance.now() + ms;
  while (!done()) {
    if (performance.now() > end) return false;
    await sleep(5);
  }
  return true;
}

interface Cluster {
  nodes: RunningServer[];
  stop(): Promise<void>;
}

async function cluster(c: Contender): Promise<Cluster> {
  const redis = await startRedis({ workDir: runDir, prefix: PREFIX, startTimeoutMs: START_TIMEOUT_MS });
  const nodes: RunningServer[] = [];
  for (const label of ['a', 'b', 'c']) nodes.push(await startNode(c, label, redis.url));
  return {
    nodes,
    async stop() {
      for (const n of nodes) await n.stop();
      await redis.server.stop();
    },
  };
}

// ---- the probes ------------------------------------------------------------------------------------

async function subscribeProbe(c: Contender, k: Cluster): Promise<string[]> {
  const [A, B] = k.nodes;
  const pub = await connect(A.port);
  const suback: number[] = [];
  let lost = 0;
  try {
    for (let i = 0; i < rounds; i++) {
      const topic = `probe/${c}/${i}/${Math.random().toString(36).slice(2)}`;
      const sub = await connect(B.port);
      let got = false;
      sub.on('message', () => {
        got = true;
      });
      const t0 = performance.now();
      await sub.subscribeAsync(topic, { qos: 1 });
      suback.push(performance.now() - t0);
      await pub.publishAsync(topic, 'first', { qos: 1 });
      if (!(await within(2000, () => got))) lost++;
      sub.end(true);
    }
  } finally {
    pub.end(true);
  }
  const ms = (v: number) => v.toFixed(2);
  return [`${lost} of ${rounds}`, `${ms(median(suback))} / ${ms(percentile(suback, 99))}`];
}

async function neighbourProbe(c: Contender, k: Cluster): Promise<string[]> {
  const [A, B] = k.nodes;
  const slow = await connect(B.port, { clientId: `${c}-slow` });
  const healthy = await connect(B.port, { clientId: `${c}-healthy` });
  const flooder = await connect(A.port);
  const pub = await connect(A.port);
  let received = 0;
  try {
    await slow.subscribeAsync('probe/slow', { qos: 1 });
    await healthy.subscribeAsync('probe/healthy', { qos: 1 });
    healthy.on('message', (topic) => {
      if (topic === 'probe/healthy') received++;
    });
    await sleep(500); // routes settle (this probe is about congestion, not routing)
    (slow.stream as unknown as { pause(): void }).pause();
    // A flood to the stopped reader: 4 k QoS 1 messages of 4 KB, fired without waiting.
    const payload = Buffer.alloc(4096, 0x61);
    for (let i = 0; i < 4000; i++) flooder.publish('probe/slow', payload, { qos: 1 });
    await sleep(1000);
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) pub.publish('probe/healthy', `h${i}`, { qos: 1 });
    await within(5000, () => received >= 200);
    return [`${received} / 200`, `${((performance.now() - t0) / 1000).toFixed(2)} s`];
  } finally {
    for (const cl of [slow, healthy, flooder, pub]) cl.end(true);
  }
}

async function crashProbe(c: Contender, k: Cluster): Promise<string[]> {
  const [A, B, C] = k.nodes;
  const id = `${c}-crash-sub`;
  const topic = 'probe/crash';
  const seen = new Map<string, number>();
  const onMessage = (_t: string, payload: Buffer) => {
    const key = payload.toString();
    seen.set(key, (seen.get(key) ?? 0) + 1);
  };
  const first = await connect(B.port, { clientId: id, clean: false });
  first.on('message', onMessage);
  await first.subscribeAsync(topic, { qos: 1 });
  first.on('close', () => undefined);
  await sleep(500);
  const pub = await connect(A.port, { clientId: `${c}-crash-pub` });
  const acked: string[] = [];
  let sent = 0;
  let publishing = true;
  // About 2 k msg/s: 20 every 10 ms, each acknowledged (PUBACK) before it counts.
  const loop = (async () => {
    while (publishing && sent < 20_000) {
      for (let i = 0; i < 20; i++) {
        const p = `m${sent++}`;
        pub.publish(topic, p, { qos: 1 }, (err) => {
          if (!err) acked.push(p);
        });
      }
      await sleep(10);
    }
  })();
  await sleep(1500);
  const killedAt = performance.now();
  process.kill(B.pid, 'SIGKILL');
  let resumeMs = Number.NaN;
  let second: MqttClient | undefined;
  for (let attempt = 0; attempt < 20 && second === undefined; attempt++) {
    second = await connect(C.port, { clientId: id, clean: false }).catch(() => undefined);
  }
  if (second !== undefined) {
    resumeMs = performance.now() - killedAt;
    second.on('message', onMessage);
  }
  await sleep(3000);
  publishing = false;
  await loop;
  // Drain: what was acknowledged must arrive.
  await within(15_000, () => acked.every((p) => seen.has(p)));
  const lost = acked.filter((p) => !seen.has(p)).length;
  const dups = [...seen.values()].filter((n) => n > 1).length;
  pub.end(true);
  second?.end(true);
  first.end(true);
  return [
    Number.isFinite(resumeMs) ? `${resumeMs.toFixed(0)} ms` : 'no CONNACK',
    `${lost} of ${acked.length}`,
    `${dups}`,
  ];
}

// ---- run and report ------------------------------------------------------------------------------

const results = new Map<string, string[]>();
for (const probe of probes) {
  for (const c of contenders) {
    process.stderr.write(`[probes] ${probe}: ${c}\n`);
    const k = await cluster(c);
    try {
      const row =
        probe === 'subscribe'
          ? await subscribeProbe(c, k)
          : probe === 'neighbour'
            ? await neighbourProbe(c, k)
            : await crashProbe(c, k);
      results.set(`${probe}/${c}`, row);
    } finally {
      await k.stop();
    }
  }
}

const HEADERS: Record<Probe, string[]> = {
  subscribe: ['first message lost', 'SUBACK ms p50 / p99'],
  neighbour: ['healthy subscriber got', 'in'],
  crash: ['kill to CONNACK', 'acknowledged lost', 'duplicates'],
};
console.log(
  `# Cluster fault probes\n\nCommand: \`${commandLine('bench:probes', 'bench/probes.ts', argv)}\`\n`,
);
for (const probe of probes) {
  console.log(`## ${probe}\n`);
  const rows = contenders.map((c) => [c, ...(results.get(`${probe}/${c}`) ?? [])]);
  console.log(
    markdownTable(
      ['Contender', ...HEADERS[probe]],
      rows,
      HEADERS[probe].map(() => 'right'),
    ),
  );
  console.log('');
}
// Clients and launchers may keep handles open: the report is out, the run is over.
process.exit(0);
