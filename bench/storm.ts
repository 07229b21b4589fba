/**
 * Reconnect storm after a load balancer failover (#13.7): `--clients` persistent MQTT clients (3.1.1,
 * Clean Session 0, a QoS 1 subscription each) reach a 2-node Shoal cluster (or Aedes + Redis:
 * mqemitter-redis, aedes-persistence-redis) on one redis-server
 * through HAProxy. HAProxy is killed (-9): every connection drops at once and the clients start
 * reconnecting (50-250 ms apart, as clients do). While they are out, one QoS 1 message is published
 * to each client's topic on node a directly, and acknowledged. Then HAProxy comes back on the same
 * port (the failover) and all clients pour in at once. The second fault (`--faults node`) kills node
 * b instead: its clients come back through HAProxy to node a, which takes their sessions over.
 *
 * Measured from HAProxy's return: when every client is back in with its session (Session Present)
 * and when every client has its message; CONNACKs that told a client to come back (admission
 * control: 3 Server unavailable for 3.1.1), sessions lost, messages missing or duplicated, and the
 * Redis commands the storm took per client.
 *
 *   npm run bench:storm -- [--clients 10000] [--workers 4] [--rounds 1] [--faults balancer,node]
 *                          [--contenders shoal-cluster,aedes-cluster]
 *
 * Target: all clients resume within 10 s with nothing lost, and each client told to come back gets
 * in on a later try within those 10 s.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median, percentile } from './lib/stats.js';
import { markdownTable } from './lib/table.js';
import { WorkerProcess } from './load/scenarios.js';
import type { FromStorm, StormReport, ToStorm } from './load/storm-worker.js';
import { type ClusterContender, startClusterNode } from './servers/cluster-node.js';
import { type HaproxyOptions, startHaproxy } from './servers/haproxy.js';
import { freePort, prepareLaunchers, type RunningServer } from './servers/index.js';
import { commandCalls, commandsBetween, startRedis } from './servers/redis.js';

const argv = process.argv.slice(2);
const args = parseArgs(
  argv,
  new Set(),
  new Set(['--clients', '--workers', '--rounds', '--faults', '--contenders']),
  (problem) => {
    console.error(`bench:storm: ${problem}`);
    console.error(
      'usage: npm run bench:storm -- [--clients N] [--workers N] [--rounds N] [--faults balancer,node] [--contenders shoal-cluster,aedes-cluster]',
    );
    process.exit(2);
  },
);
const clients = args.num('--clients', 10_000, 10, 40_000);
const workerCount = args.num('--workers', 4, 1, 8);
const rounds = args.num('--rounds', 1, 1, 5);
type Fault = 'balancer' | 'node';
const faults = args.list<Fault>('--faults', ['balancer', 'node']);
const CONTENDERS: readonly ClusterContender[] = ['shoal-cluster', 'aedes-cluster'];
const contenders = args.list<ClusterContender>('--contenders', CONTENDERS);
const CONTENDER_LABEL: Record<ClusterContender, string> = {
  'shoal-cluster': 'Shoal, 2 nodes',
  'aedes-cluster': 'Aedes + Redis, 2 nodes',
};
const TARGET_S = 10;
/**
 * HAProxy takes two files per proxied connection and a process here may hold 20,000: above ~9,000
 * clients the balancer is a pair of HAProxy processes (clients split between them, as behind DNS
 * round robin over two load balancers), both failing and coming back together.
 */
const CLIENTS_PER_BALANCER = 9000;
const balancerCount = Math.ceil(clients / CLIENTS_PER_BALANCER);
/** How long a round waits for the last client before it gives up and reports what it has. */
const ROUND_TIMEOUT_MS = 60_000;
const PREFIX = { raiseNofile: true };
const START_TIMEOUT_MS = 15_000;
const WORKER = join(import.meta.dirname, 'load/storm-worker.ts');

const runDir = guardRun('bench:storm', 15 * 60_000);
const launchers = await prepareLaunchers({ buildDir: join(runDir, 'build') });

/** A storm-worker process: the load generator's worker process class, with storm-worker.ts. */
type StormWorker = WorkerProcess<FromStorm, ToStorm>;
const stormWorker = (): StormWorker => new WorkerProcess<FromStorm, ToStorm>(PREFIX, WORKER);

interface RoundResult {
  /** The clients the fault dropped. */
  clients: number;
  allResumedS: number;
  allReceivedS: number;
  p50ResumeS: number;
  p99ResumeS: number;
  resumed: number;
  received: number;
  sessionsLost: number;
  duplicates: number;
  refused: number;
  connectErrors: number;
  redisCommandsPerClient: number;
  errors: string[];
}

function connectDirect(port: number): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: 'storm-publisher',
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
  });
}

/** One QoS 1 message per client topic, at most `window` unacknowledged at a time. */
async function publishAll(client: MqttClient, n: number, window = 1000): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await client.publishAsync(`storm/${i}`, `queued ${i}`, { qos: 1 });
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
}

async function round(r: number, fault: Fault, contender: ClusterContender): Promise<RoundResult> {
  const redis = await startRedis({ workDir: runDir, prefix: PREFIX, startTimeoutMs: START_TIMEOUT_MS });
  const servers: RunningServer[] = [];
  const workers: StormWorker[] = [];
  let balancers: RunningServer[] = [];
  let publisher: MqttClient | undefined;
  try {
    const nodes = [
      await startClusterNode(launchers, contender, 'a', redis.url),
      await startClusterNode(launchers, contender, 'b', redis.url),
    ];
    servers.push(...nodes);
    const lbs: HaproxyOptions[] = [];
    for (let b = 0; b < balancerCount; b++)
      lbs.push({
        workDir: runDir,
        port: await freePort(),
        backends: nodes.map((n, i) => ({ name: `node${i}`, port: n.port })),
        // A dead node is taken out of the rotation at once (health checks every 200 ms).
        check: fault === 'node',
        maxConnections: Math.ceil(clients / balancerCount) + 100,
        prefix: PREFIX,
        startTimeoutMs: START_TIMEOUT_MS,
      });
    balancers = await Promise.all(lbs.map((lb) => startHaproxy(lb)));

    // Everyone in, subscribed, through the balancer.
    const per = Math.ceil(clients / workerCount);
    for (let w = 0; w < workerCount; w++) workers.push(stormWorker());
    await Promise.all(workers.map((w) => w.next('ready', 20_000)));
    const opening = Date.now();
    workers.forEach((w, i) => {
      const first = i * per;
      const count = Math.max(0, Math.min(per, clients - first));
      const port = lbs[i % balancerCount].port;
      w.send({ type: 'open', host: '127.0.0.1', port, first, count, concurrency: 250 });
    });
    await Promise.all(workers.map((w) => w.next('opened', 120_000)));
    console.log(
      `[round ${r}] ${clients} clients in through HAProxy in ${((Date.now() - opening) / 1000).toFixed(1)} s`,
    );

    const reportAll = async (): Promise<StormReport[]> => {
      for (const w of workers) w.send({ type: 'report' });
      return Promise.all(workers.map((w) => w.next('report', 10_000)));
    };
    /** The clients dropped, once the count stopped moving (every connection to b closes at once). */
    const settledDrops = async (): Promise<number> => {
      let last = -1;
      for (;;) {
        const dropped = (await reportAll()).reduce((s, x) => s + x.dropped, 0);
        if (dropped > 0 && dropped === last) return dropped;
        last = dropped;
        await new Promise((res) => setTimeout(res, 300));
      }
    };
    const before = commandCalls(await redis.info('commandstats'));
    let started: number;
    /** The clients the fault dropped (all of them for the balancer, node b's for the node). */
    let expected: number;
    if (fault === 'balancer') {
      // The balancers fail: every connection drops at once.
      for (const b of balancers) process.kill(b.pid, 'SIGKILL');
      await Promise.all(balancers.map((b) => b.stop()));
      balancers = [];
      // While they are out, each client's topic gets one QoS 1 message, acknowledged (in its session).
      publisher = await connectDirect(nodes[0].port);
      const publishing = Date.now();
      await publishAll(publisher, clients);
      console.log(
        `[round ${r}] ${clients} QoS 1 messages queued in ${((Date.now() - publishing) / 1000).toFixed(1)} s`,
      );
      expected = clients;
      // The failover: HAProxy back on the same ports, and the storm.
      started = Date.now();
      balancers = await Promise.all(lbs.map((lb) => startHaproxy(lb)));
    } else {
      // Node b dies (kill -9): its clients come back through HAProxy to node a, which takes their
      // sessions over from the dead node (the reaper orphans them). Each topic gets a message.
      publisher = await connectDirect(nodes[0].port);
      started = Date.now();
      process.kill(nodes[1].pid, 'SIGKILL');
      await publishAll(publisher, clients);
      expected = await settledDrops();
      console.log(`[round ${r}] node b killed: ${expected} clients dropped`);
    }
    let reports: StormReport[] = [];
    for (;;) {
      reports = await reportAll();
      const received = reports.reduce((s, x) => s + x.received, 0);
      const resumed = reports.reduce((s, x) => s + x.resumed, 0);
      if ((received >= expected && resumed >= expected) || Date.now() - started > ROUND_TIMEOUT_MS) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    const after = commandCalls(await redis.info('commandstats'));
    const resumedAt = reports.flatMap((x) => x.resumedAt).map((t) => (t - started) / 1000);
    const receivedAt = reports.flatMap((x) => x.receivedAt).map((t) => (t - started) / 1000);
    const sum = (f: (x: StormReport) => number): number => reports.reduce((s, x) => s + f(x), 0);
    const resumed = sum((x) => x.resumed);
    const received = sum((x) => x.received);
    return {
      clients: expected,
      allResumedS: resumed >= expected ? Math.max(...resumedAt) : Number.NaN,
      allReceivedS: received >= expected ? Math.max(...receivedAt) : Number.NaN,
      p50ResumeS: median(resumedAt),
      p99ResumeS: percentile(resumedAt, 99),
      resumed,
      received,
      sessionsLost: sum((x) => x.sessionsLost),
      duplicates: sum((x) => x.duplicates),
      refused: sum((x) => Object.values(x.refusedBy).reduce((a, b) => a + b, 0)),
      connectErrors: sum((x) => x.connectErrors),
      redisCommandsPerClient: commandsBetween(before, after) / expected,
      errors: reports.flatMap((x) => x.errors).slice(0, 5),
    };
  } finally {
    await publisher?.endAsync(true).catch(() => undefined);
    await Promise.all(workers.map((w) => w.stop(1000)));
    await Promise.all(balancers.map((b) => b.stop()));
    for (const s of servers) await s.stop();
    await redis.stop();
  }
}

console.log(commandLine('bench:storm', 'bench/storm.ts', argv));
console.log(
  `bench:storm: ${clients} persistent clients, ${workerCount} client processes, ${contenders.join(', ')}, ${balancerCount} HAProxy`,
);
const FAULT_LABEL: Record<Fault, string> = {
  balancer: 'HAProxy killed and back on its port: every client reconnects at once',
  node: 'node b killed (-9): its clients move to node a through HAProxy',
};
const med = <T>(xs: T[], f: (x: T) => number): number => median(xs.map(f));
const fmt = (s: number): string => (Number.isFinite(s) ? `${s.toFixed(2)} s` : 'not all');
const rows: string[][] = [];
const rowsMet: { contender: ClusterContender; ok: boolean }[] = [];
for (const fault of faults)
  for (const contender of contenders) {
    const results: RoundResult[] = [];
    for (let r = 1; r <= rounds; r++) {
      const res = await round(r, fault, contender);
      results.push(res);
      console.log(
        `[${fault} ${r} ${contender}] ${res.clients} clients: all resumed ${fmt(res.allResumedS)}, all messages ${fmt(res.allReceivedS)}, ` +
          `told to come back ${res.refused}, sessions lost ${res.sessionsLost}, missing ${res.clients - res.received}` +
          (res.errors.length > 0 ? `, errors: ${res.errors.join('; ')}` : ''),
      );
    }
    rows.push([
      FAULT_LABEL[fault],
      CONTENDER_LABEL[contender],
      String(med(results, (x) => x.clients)),
      fmt(med(results, (x) => x.allResumedS)),
      `${fmt(med(results, (x) => x.p50ResumeS))} / ${fmt(med(results, (x) => x.p99ResumeS))}`,
      fmt(med(results, (x) => x.allReceivedS)),
      String(med(results, (x) => x.refused)),
      `${med(results, (x) => x.sessionsLost)} / ${med(results, (x) => x.clients - x.received)} / ${med(results, (x) => x.duplicates)}`,
      med(results, (x) => x.redisCommandsPerClient).toFixed(1),
    ]);
    const worst = Math.max(...results.map((x) => x.allReceivedS));
    const lost = results.reduce((s, x) => s + x.sessionsLost + (x.clients - x.received), 0);
    const ok = Number.isFinite(worst) && worst <= TARGET_S && lost === 0;
    rowsMet.push({ contender, ok });
    console.log(
      `- ${ok ? 'met' : 'NOT met'} (${fault}, ${contender}): every client back with its session and its message within ${TARGET_S} s, ` +
        `nothing lost (worst round ${fmt(worst)}, lost ${lost})`,
    );
  }
console.log('');
console.log(
  markdownTable(
    [
      `Reconnect storm, ${clients} persistent clients (medians of ${rounds})`,
      'broker',
      'clients dropped',
      'all back with session',
      'resume p50 / p99',
      'all messages in',
      'told to come back',
      'sessions lost / missing / dup',
      'Redis cmds per client',
    ],
    rows,
    ['left', 'left', 'right', 'right', 'right', 'right', 'right', 'right', 'right'],
  ),
);
const shoalMet = rowsMet.filter((x) => x.contender === 'shoal-cluster').every((x) => x.ok);
console.log(
  `\n- ${shoalMet ? 'met' : 'NOT met'}: Shoal, every fault: every client back with its session and message within ${TARGET_S} s, nothing lost`,
);
