/**
 * Takeover benchmark: how long a client with a persistent session takes to move from node A to
 * node B (CONNECT on B until CONNACK, and until A has closed the old connection), Shoal cluster
 * beside Aedes + Redis. Each contender gets two fresh nodes on a fresh redis-server; the client
 * alternates between them, with a QoS 1 subscription and a few queued messages, so every takeover
 * moves a real session.
 *
 *   npm run bench:takeover -- [--takeovers N] [--contenders shoal-cluster,aedes-cluster]
 *
 * Target (issue #5): a takeover completes in < 100 ms when the old node is alive.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median, percentile } from './lib/stats.js';
import { formatRatio, markdownTable } from './lib/table.js';
import { startClusterNode } from './servers/cluster-node.js';
import { prepareLaunchers, type RunningServer } from './servers/index.js';
import { startRedis } from './servers/redis.js';

type Contender = 'shoal-cluster' | 'aedes-cluster';
const CONTENDERS: readonly Contender[] = ['shoal-cluster', 'aedes-cluster'];
const argv = process.argv.slice(2);
const args = parseArgs(argv, new Set(), new Set(['--takeovers', '--contenders']), (problem) => {
  console.error(`bench:takeover: ${problem}`);
  console.error(
    'usage: npm run bench:takeover -- [--takeovers N] [--contenders shoal-cluster,aedes-cluster]',
  );
  process.exit(2);
});
const takeovers = args.num('--takeovers', 101, 3, 1000);
const contenders = args.list('--contenders', CONTENDERS);
const PREFIX = { raiseNofile: true };
const START_TIMEOUT_MS = 15_000;
/** An old connection not closed within this is counted as left open. */
const CLOSE_WAIT_MS = 2_000;

const runDir = guardRun('bench:takeover', 10 * 60_000);
const launchers = await prepareLaunchers({ buildDir: join(runDir, 'build') });

function startNode(c: Contender, label: string, redisUrl: string): Promise<RunningServer> {
  return startClusterNode(launchers, c, label, redisUrl);
}

/** Connects with the client's persistent session (3.1.1, Clean Session 0); resolves at CONNACK. */
function connect(port: number, clientId: string): Promise<MqttClient> {
  return new Promise((resolve, reject) => {
    const client = mqtt.connect(`mqtt://127.0.0.1:${port}`, {
      clientId,
      clean: false,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    });
    client.once('connect', () => resolve(client));
    client.once('error', (err) => {
      client.end(true);
      reject(err);
    });
  });
}

interface Result {
  connackMs: number[];
  closedMs: number[];
  leftOpen: number;
  /** CONNECTs that got no CONNACK within 5 s (the client then connects again, to the same node). */
  failed: number;
}

async function run(c: Contender): Promise<Result> {
  const redis = await startRedis({ workDir: runDir, prefix: PREFIX, startTimeoutMs: START_TIMEOUT_MS });
  const nodes = [await startNode(c, 'a', redis.url), await startNode(c, 'b', redis.url)];
  const result: Result = { connackMs: [], closedMs: [], leftOpen: 0, failed: 0 };
  const publisher = await connect(nodes[0].port, `${c}-pub`);
  try {
    const id = `${c}-mover`;
    let current = await connect(nodes[0].port, id);
    await current.subscribeAsync('bench/takeover', { qos: 1 });
    for (let i = 1; i <= takeovers; i++) {
      // Something queued for the session on the way.
      for (let m = 0; m < 5; m++) await publisher.publishAsync('bench/takeover', `m${i}-${m}`, { qos: 1 });
      const old = current;
      const closed = new Promise<number>((resolve) => {
        const timer = setTimeout(() => resolve(Number.NaN), CLOSE_WAIT_MS);
        old.once('close', () => {
          clearTimeout(timer);
          resolve(performance.now());
        });
      });
      const t0 = performance.now();
      const next = await connect(nodes[i % 2].port, id).catch(() => undefined);
      if (next === undefined) {
        result.failed++;
        old.end(true);
        current = await connect(nodes[i % 2].port, id);
        continue;
      }
      current = next;
      result.connackMs.push(performance.now() - t0);
      const at = await closed;
      if (Number.isNaN(at)) result.leftOpen++;
      else result.closedMs.push(at - t0);
      old.end(true);
    }
    current.end(true);
  } finally {
    publisher.end(true);
    for (const n of nodes) await n.stop();
    await redis.server.stop();
  }
  return result;
}

const results = new Map<Contender, Result>();
for (const c of contenders) {
  process.stderr.write(`[takeover] ${c}: ${takeovers} takeovers A <-> B\n`);
  results.set(c, await run(c));
}

const ms = (v: number) => (Number.isFinite(v) ? v.toFixed(2) : 'n/a');
const rows = contenders.map((c) => {
  const r = results.get(c)!;
  return [
    c,
    ms(median(r.connackMs)),
    ms(percentile(r.connackMs, 90)),
    ms(Math.max(...r.connackMs)),
    ms(median(r.closedMs)),
    `${r.leftOpen} / ${takeovers}`,
    `${r.failed} / ${takeovers}`,
  ];
});
console.log(
  `# Takeover benchmark\n\nCommand: \`${commandLine('bench:takeover', 'bench/takeover.ts', argv)}\`\n`,
);
console.log(
  markdownTable(
    [
      'Contender',
      'CONNACK median (ms)',
      'p90',
      'max',
      'old connection closed, median (ms)',
      'old left open',
      'no CONNACK',
    ],
    rows,
    ['left', 'right', 'right', 'right', 'right', 'right', 'right'],
  ),
);
const shoal = results.get('shoal-cluster');
const aedes = results.get('aedes-cluster');
if (shoal !== undefined) {
  const m = median(shoal.connackMs);
  console.log(`\n- ${m < 100 ? 'met' : 'NOT met'}: takeover < 100 ms (median ${ms(m)} ms)`);
}
if (shoal !== undefined && aedes !== undefined)
  console.log(
    `- CONNACK median, Aedes + Redis / Shoal: ${formatRatio(median(aedes.connackMs) / median(shoal.connackMs))}`,
  );
