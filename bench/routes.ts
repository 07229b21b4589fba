/**
 * What cluster-wide subscriptions cost (#13.8, docs/scaling.md): every node keeps a replica of the
 * whole route table, so its memory grows with the subscriptions of the cluster, not with its own
 * clients. One client on node a subscribes `--filters` distinct filters (100 per SUBSCRIBE); node b
 * has no client at all. Measured: RSS growth of node a (its subscriptions, local index and routes)
 * and of node b (the replica only), Redis `used_memory` growth, and Redis commands per filter.
 *
 *   npm run bench:routes -- [--filters 50000] [--rounds 1]
 */
import { join } from 'node:path';
import mqtt from 'mqtt';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { startClusterNode } from './servers/cluster-node.js';
import { prepareLaunchers } from './servers/index.js';
import { commandCalls, commandsBetween, startRedis } from './servers/redis.js';

const argv = process.argv.slice(2);
const args = parseArgs(argv, new Set(), new Set(['--filters', '--rounds']), (problem) => {
  console.error(`bench:routes: ${problem}`);
  console.error('usage: npm run bench:routes -- [--filters N] [--rounds N]');
  process.exit(2);
});
const filters = args.num('--filters', 50_000, 1000, 1_000_000);
const rounds = args.num('--rounds', 1, 1, 5);
const PER_SUBSCRIBE = 100;
const PREFIX = { raiseNofile: true };
const runDir = guardRun('bench:routes', 15 * 60_000);
const launchers = await prepareLaunchers({ buildDir: join(runDir, 'build') });

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS once it stopped moving (within 1 % over 500 ms), at most ~5 s. */
async function settledRss(read: () => number): Promise<number> {
  let prev = read();
  for (let i = 0; i < 10; i++) {
    await sleep(500);
    const now = read();
    if (Math.abs(now - prev) < prev * 0.01) return now;
    prev = now;
  }
  return prev;
}

interface Round {
  aBytes: number;
  bBytes: number;
  redisBytes: number;
  commands: number;
  seconds: number;
}

async function round(): Promise<Round> {
  const redis = await startRedis({ workDir: runDir, prefix: PREFIX, startTimeoutMs: 15_000 });
  const a = await startClusterNode(launchers, 'shoal-cluster', 'a', redis.url);
  const b = await startClusterNode(launchers, 'shoal-cluster', 'b', redis.url);
  try {
    await sleep(1000);
    const [a0, b0] = [await settledRss(() => a.rssKB()), await settledRss(() => b.rssKB())];
    const m0 = Number((await redis.info('memory')).used_memory);
    const c0 = commandCalls(await redis.info('commandstats'));
    const client = await mqtt.connectAsync(`mqtt://127.0.0.1:${a.port}`, {
      clientId: 'routes',
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const started = Date.now();
    for (let i = 0; i < filters; i += PER_SUBSCRIBE) {
      const batch: Record<string, { qos: 0 }> = {};
      for (let j = i; j < Math.min(filters, i + PER_SUBSCRIBE); j++)
        batch[`fleet/${j % 977}/device-${j}/state`] = { qos: 0 };
      // SUBACK comes once every node routes the filters here (guarantee 8): b holds them then.
      await client.subscribeAsync(batch);
    }
    const seconds = (Date.now() - started) / 1000;
    const c1 = commandCalls(await redis.info('commandstats'));
    const [a1, b1] = [await settledRss(() => a.rssKB()), await settledRss(() => b.rssKB())];
    const m1 = Number((await redis.info('memory')).used_memory);
    await client.endAsync();
    return {
      aBytes: ((a1 - a0) * 1024) / filters,
      bBytes: ((b1 - b0) * 1024) / filters,
      redisBytes: (m1 - m0) / filters,
      commands: commandsBetween(c0, c1) / filters,
      seconds,
    };
  } finally {
    await a.stop();
    await b.stop();
    await redis.stop();
  }
}

console.log(commandLine('bench:routes', 'bench/routes.ts', argv));
const results: Round[] = [];
for (let r = 1; r <= rounds; r++) {
  const res = await round();
  results.push(res);
  console.log(
    `[round ${r}] ${filters} filters in ${res.seconds.toFixed(1)} s: node a +${res.aBytes.toFixed(0)} B, node b ` +
      `+${res.bBytes.toFixed(0)} B, Redis +${res.redisBytes.toFixed(0)} B, ${res.commands.toFixed(2)} Redis commands per filter`,
  );
}
const med = (f: (r: Round) => number) => median(results.map(f));
console.log('');
console.log(
  markdownTable(
    [`Per distinct filter (${filters}, medians of ${rounds})`, 'value'],
    [
      [
        'node a RSS (its client subscribed: session, index, routes, replica)',
        `${med((r) => r.aBytes).toFixed(0)} B`,
      ],
      ['node b RSS (no client: the route replica only)', `${med((r) => r.bBytes).toFixed(0)} B`],
      ['Redis used_memory (route table, route log)', `${med((r) => r.redisBytes).toFixed(0)} B`],
      ['Redis commands per filter subscribed', med((r) => r.commands).toFixed(2)],
      ['filters subscribed per second (100 per SUBSCRIBE)', (filters / med((r) => r.seconds)).toFixed(0)],
    ],
    ['left', 'right'],
  ),
);
