/**
 * Cluster benchmark: cross-node delivery through Redis. Publishers connect to node A, the
 * subscriber to node B, both nodes on one fresh redis-server; contenders:
 *
 *   shoal-cluster  2 Shoal nodes (`shoal start --redis ... --node-id a|b`) + 1 redis-server
 *                  (--nodes 1-4: publishers on a, the subscriber on b, c and d members without clients)
 *   aedes-cluster  2 Aedes nodes (mqemitter-redis + aedes-persistence-redis) + 1 redis-server
 *   shoal-single   1 Shoal node, no Redis: publishers and subscriber on the same node (reference)
 *
 * Fresh processes (and a fresh Redis) per trial; per scenario and round the contenders run in the
 * same order, so slow drifts of the machine fall on all of them; medians over rounds. Redis
 * commands per delivered message: `INFO commandstats` (sum of calls) at the start and the end of
 * the measured window, divided by the messages the subscriber received in it.
 *
 *   npm run bench:cluster -- [--quick] [--rounds N] [--scenarios xfanin,xqos1,xpqos1,xlatency]
 *                            [--contenders shoal-cluster,aedes-cluster,shoal-single] [--json FILE]
 *
 * More: --duration S, --warmup S, --drain S, --workers N, --payload BYTES, --latency-tick-ms MS,
 * --shoal-impl dist|build|tsx, --shoal-cli, --log-level LEVEL. See docs/benchmarks.md.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median } from './lib/stats.js';
import { formatRate, formatRatio, markdownTable } from './lib/table.js';
import type { Job, LoadResult } from './load/messages.js';
import { loadJobs, type ScenarioName, sleep, type TrialConfig, WorkerProcess } from './load/scenarios.js';
import {
  aedesVersion,
  freePort,
  openFileLimits,
  prepareLaunchers,
  type RunningServer,
  type ShoalImpl,
  type SpawnPrefix,
  shoalNodeFlags,
  startServerProcess,
} from './servers/index.js';
import {
  commandCalls,
  commandDelta,
  type Info,
  type RunningRedis,
  redisVersion,
  startRedis,
} from './servers/redis.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');

// ---- options -------------------------------------------------------------------------------------------

type Scenario = 'xfanin' | 'xqos1' | 'xpqos1' | 'xlatency';
const SCENARIOS: readonly Scenario[] = ['xfanin', 'xqos1', 'xpqos1', 'xlatency'];
type Contender = 'shoal-cluster' | 'aedes-cluster' | 'shoal-single';
const CONTENDERS: readonly Contender[] = ['shoal-cluster', 'aedes-cluster', 'shoal-single'];
const BASE: Record<Scenario, ScenarioName> = {
  xfanin: 'fanin',
  xqos1: 'qos1',
  xpqos1: 'pqos1',
  xlatency: 'latency',
};
const NAMES: Record<Contender, string> = {
  'shoal-cluster': 'Shoal cluster',
  'aedes-cluster': 'Aedes cluster',
  'shoal-single': 'Shoal single',
};

const argv = process.argv.slice(2);

function usage(message: string): never {
  console.error(`bench:cluster: ${message}`);
  console.error(
    'usage: npm run bench:cluster -- [--quick] [--rounds N] [--scenarios xfanin,xqos1,xpqos1,xlatency]\n' +
      '                                [--contenders shoal-cluster,aedes-cluster,shoal-single] [--json FILE]\n' +
      '                                [--duration S] [--warmup S] [--drain S] [--workers N] [--payload BYTES]\n' +
      '                                [--latency-tick-ms MS] [--nodes 1-4] [--shoal-impl dist|build|tsx] [--shoal-cli]\n' +
      '                                [--log-level LEVEL] [--shoal-config FILE]',
  );
  process.exit(2);
}

const FLAGS = new Set(['--quick', '--shoal-cli']);
const VALUED = new Set([
  '--scenarios',
  '--contenders',
  '--rounds',
  '--json',
  '--duration',
  '--warmup',
  '--drain',
  '--workers',
  '--payload',
  '--latency-tick-ms',
  '--ack-delay-ms',
  '--nodes',
  '--shoal-impl',
  '--log-level',
  '--shoal-config',
]);
const args = parseArgs(argv, FLAGS, VALUED, usage);
const values = args.values;
const { list, num } = args;

const quick = values.has('--quick');
const scenarios = list<Scenario>('--scenarios', SCENARIOS);
const contenders = list<Contender>('--contenders', CONTENDERS);
const rounds = num('--rounds', quick ? 1 : 3, 1, 20);
const jsonPath = values.get('--json');
const drainMs = num('--drain', 3, 0, 30) * 1000;
const shoalImplFlag = values.get('--shoal-impl');
if (shoalImplFlag !== undefined && !['dist', 'build', 'tsx'].includes(shoalImplFlag))
  usage('--shoal-impl must be dist, build or tsx');
const shoalCli = values.has('--shoal-cli');
const logLevel = values.get('--log-level') ?? 'warn';
/** A Shoal config file every Shoal node of the run starts with (`--config`), for what-if runs. */
const shoalConfig = values.get('--shoal-config');
/**
 * Cluster nodes per clustered trial (1-4, default 2): publishers on node a, the subscriber on node
 * b (on a when there is one node); nodes c and d are members that serve no client. Commands per
 * delivered message should stay flat as nodes are added (#13.8).
 */
const nodeCount = num('--nodes', 2, 1, 4);
const NODE_LABELS = ['a', 'b', 'c', 'd'] as const;

const config: TrialConfig = {
  warmupMs: num('--warmup', quick ? 0.5 : 1, 0, 60) * 1000,
  durationMs: num('--duration', quick ? 2 : 5, 0.5, 120) * 1000,
  tailMs: 300,
  payloadSize: num('--payload', 64, 8, 65_000),
  workers: num('--workers', 2, 1, 8),
  latencyRate: 5_000,
  offeredRate: 0,
  latencyTickMs: num('--latency-tick-ms', 2, 1, 100),
  ackDelayMs: num('--ack-delay-ms', 0, 0, 1000),
  idleConnections: 0,
  idlePerSourceAddress: 0,
  idleConcurrency: 0,
  idleTimeoutMs: 0,
  idlePerWorker: 0,
  setupTimeoutMs: 15_000,
  workerPrefix: { raiseNofile: true },
};
const PREFIX: SpawnPrefix = { raiseNofile: true };
const START_TIMEOUT_MS = 15_000;
/** Received counts are recorded per this interval (stall detection). */
const TIMELINE_MS = 100;
/** Node and Redis RSS are sampled this often during a trial. */
const RSS_SAMPLE_MS = 250;

/** A whole run never takes longer than this; past it everything is killed. */
const runDir = guardRun('bench:cluster', 20 * 60_000);
const command = commandLine('bench:cluster', 'bench/cluster.ts', argv);
const startedAt = new Date();
const loadAtStart = loadavg();
const launchers = await prepareLaunchers({
  buildDir: join(runDir, 'build'),
  shoalImpl: shoalImplFlag as ShoalImpl | undefined,
  shoalCli,
});
const versions = {
  redis: redisVersion(),
  aedes: aedesVersion(),
  mqemitterRedis: packageVersion('mqemitter-redis'),
  persistenceRedis: packageVersion('aedes-persistence-redis'),
};
if (versions.redis === 'not found' && contenders.some((c) => c !== 'shoal-single'))
  usage('redis-server not found (apt-get install redis-server, or set REDIS_SERVER_BIN)');

function packageVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(REPO, 'node_modules', name, 'package.json'), 'utf8'));
    return (pkg as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

// ---- one trial -----------------------------------------------------------------------------------------

interface NodeSample {
  label: string;
  pid: number;
  rssStartKB: number;
  rssEndKB: number;
  rssPeakKB: number;
  rssAfterDrainKB: number;
  cpuPct: number;
}

interface TrialResult {
  scenario: Scenario;
  contender: Contender;
  round: number;
  metrics: Record<string, number>;
  details: Record<string, unknown>;
  warnings: string[];
  error?: string;
}

interface Proc {
  label: string;
  server: RunningServer;
}

let trialCounter = 0;

async function startNode(c: Contender, label: string, port: number, redisUrl?: string): Promise<Proc> {
  let args: string[];
  if (c === 'aedes-cluster') {
    args = [...launchers.script('aedes-cluster-server'), '--port', String(port), '--redis', redisUrl!];
  } else {
    const shoalArgs = [
      ...(redisUrl === undefined ? [] : ['--redis', redisUrl, '--node-id', label]),
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--ws-port',
      '0',
      '--http-port',
      '0',
      '--log-level',
      logLevel,
      ...(shoalConfig === undefined ? [] : ['--config', shoalConfig]),
    ];
    args = shoalCli
      ? [join(REPO, 'bin/shoal.js'), 'start', ...shoalArgs]
      : [...launchers.script('shoal-cluster-server'), '--impl', launchers.implDir, '--', ...shoalArgs];
    args = [...shoalNodeFlags(), ...args];
  }
  const server = await startServerProcess({
    name: `${c} node ${label}`,
    command: process.execPath,
    args,
    port,
    prefix: PREFIX,
    startTimeoutMs: START_TIMEOUT_MS,
  });
  return { label, server };
}

/**
 * Shoal: SUBACK may leave before the route is in Redis; wait until node b's routes are there (a
 * persistent session's subscription is routed to the session itself, in `session-routes`).
 */
async function waitRoutes(redis: RunningRedis, node: string, timeoutMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < timeoutMs) {
    if (Number(await redis.call('SCARD', `{shoal}:node-routes:${node}`)) > 0) return Date.now() - t0;
    if (Number(await redis.call('HLEN', '{shoal}:session-routes')) > 0) return Date.now() - t0;
    await sleep(20);
  }
  throw new Error(`node ${node}'s route did not reach Redis within ${timeoutMs} ms`);
}

function num0(v: string | undefined): number {
  const n = Number(v);
  return Number.isFinite(n) ? n : Number.NaN;
}

async function runTrial(scenario: Scenario, contender: Contender, round: number): Promise<TrialResult> {
  const tag = `c${++trialCounter}`;
  const result: TrialResult = { scenario, contender, round, metrics: {}, details: {}, warnings: [] };
  const clustered = contender !== 'shoal-single';
  let redis: RunningRedis | undefined;
  const nodes: Proc[] = [];
  let workers: WorkerProcess[] = [];
  let rssTimer: NodeJS.Timeout | undefined;
  const rssPeak = new Map<number, number>();
  /** The measured window, wall clock (ms since the epoch); 0 until it happened. */
  let windowFrom = 0;
  let windowTo = 0;
  try {
    const base = BASE[scenario];
    const probeJobs = loadJobs(base, 0, config, tag, 0);
    workers = probeJobs.map(() => new WorkerProcess(config.workerPrefix));
    if (clustered)
      redis = await startRedis({ workDir: runDir, prefix: PREFIX, startTimeoutMs: START_TIMEOUT_MS });
    const count = clustered ? nodeCount : 1;
    const ports: number[] = [];
    for (let i = 0; i < count; i++) ports.push(await freePort());
    const portA = ports[0];
    if (clustered) {
      nodes.push(
        ...(await Promise.all(
          ports.map((port, i) => startNode(contender, NODE_LABELS[i], port, redis!.url)),
        )),
      );
    } else {
      nodes.push(await startNode(contender, 'a', portA));
    }
    const subPort = ports[Math.min(1, count - 1)];
    const subNode = NODE_LABELS[Math.min(1, count - 1)];
    const jobs: Job[] = loadJobs(base, portA, config, tag, subPort);
    for (const [i, job] of jobs.entries()) workers[i].send({ type: 'job', job });
    await Promise.all(workers.map((w) => w.next('ready', config.setupTimeoutMs + 15_000)));
    if (contender === 'shoal-cluster') {
      result.details.routeWaitMs = await waitRoutes(redis!, subNode, 5_000);
      // Node a reads the route log with XREAD BLOCK: give it a moment past the write.
      await sleep(100);
    }

    const watched: { label: string; pid: number; cpuMs(): number; rssKB(): number }[] = nodes.map((n) => ({
      label: `node ${n.label}`,
      pid: n.server.pid,
      cpuMs: n.server.cpuMs,
      rssKB: n.server.rssKB,
    }));
    if (redis !== undefined)
      watched.push({
        label: 'redis',
        pid: redis.server.pid,
        cpuMs: redis.server.cpuMs,
        rssKB: redis.server.rssKB,
      });
    const rssStart = watched.map((w) => w.rssKB());
    rssTimer = setInterval(() => {
      for (const w of watched) rssPeak.set(w.pid, Math.max(rssPeak.get(w.pid) ?? 0, w.rssKB()));
    }, RSS_SAMPLE_MS);

    for (const w of workers)
      w.send({
        type: 'start',
        warmupMs: config.warmupMs,
        durationMs: config.durationMs,
        tailMs: config.tailMs,
        drainMs,
        timelineMs: TIMELINE_MS,
      });
    const t0 = Date.now();
    await sleep(config.warmupMs);
    const cpu0 = watched.map((w) => w.cpuMs());
    const info0 =
      redis === undefined ? undefined : await redis.info('commandstats', 'memory', 'stats', 'clients');
    const wall0 = Date.now();
    await sleep(Math.max(0, config.warmupMs + config.durationMs - (Date.now() - t0)));
    const info1 =
      redis === undefined ? undefined : await redis.info('commandstats', 'memory', 'stats', 'clients');
    const wall1 = Date.now();
    windowFrom = wall0;
    windowTo = wall1;
    const cpu1 = watched.map((w) => w.cpuMs());
    const rssEnd = watched.map((w) => w.rssKB());
    for (const n of nodes)
      if (!n.server.alive()) throw new Error(`node ${n.label} exited during the measurement window`);
    if (redis !== undefined && !redis.server.alive())
      throw new Error('redis-server exited during the measurement window');

    const left = 2 * (config.warmupMs + config.durationMs) + drainMs + 5_000 - (Date.now() - t0);
    const results: LoadResult[] = [];
    for (const w of workers) results.push((await w.next('result', Math.max(1_000, left))).result);
    const rssAfterDrain = watched.map((w) => w.rssKB());
    clearInterval(rssTimer);
    rssTimer = undefined;

    // ---- what the load saw
    let delivered = 0;
    let sent = 0;
    let acked = 0;
    let genCpu = 0;
    let sentTotal = 0;
    let ackedTotal = 0;
    let receivedTotal = 0;
    let unexpectedCloses = 0;
    for (const r of results) {
      const sec = r.windowMs / 1000;
      delivered += r.received / sec;
      sent += r.sent / sec;
      acked += r.acked / sec;
      genCpu += r.cpuMs / r.windowMs;
      sentTotal += r.sentTotal;
      ackedTotal += r.ackedTotal ?? 0;
      receivedTotal += r.receivedTotal;
      unexpectedCloses += r.unexpectedCloses;
      if (r.errors.length > 0) result.warnings.push(`load errors: ${r.errors.slice(0, 5).join(' | ')}`);
    }
    const latency = results.find((r) => r.latency !== undefined)?.latency;
    if (scenario === 'xlatency') {
      result.metrics.p50 = latency?.p50Ms ?? Number.NaN;
      result.metrics.p99 = latency?.p99Ms ?? Number.NaN;
      const expected = (config.latencyRate * config.durationMs) / 1000;
      if (latency === undefined || latency.count < expected * 0.95)
        result.warnings.push(
          `latency: only ${latency?.count ?? 0} of ~${Math.round(expected)} messages arrived in the window`,
        );
    } else {
      result.metrics.delivered = delivered;
    }

    // Stalls: the longest run of empty TIMELINE_MS intervals at the subscriber inside the window.
    const subTimeline = results.find((_r, i) => jobs[i].subscribers.length > 0)?.timeline ?? [];
    const firstBucket = Math.ceil(config.warmupMs / TIMELINE_MS);
    const lastBucket = Math.floor((config.warmupMs + config.durationMs) / TIMELINE_MS);
    let longestGap = 0;
    let gap = 0;
    let minBucket = Number.POSITIVE_INFINITY;
    for (let i = firstBucket; i < Math.min(lastBucket, subTimeline.length); i++) {
      const n = subTimeline[i];
      minBucket = Math.min(minBucket, n);
      gap = n === 0 ? gap + 1 : 0;
      longestGap = Math.max(longestGap, gap);
    }
    if (longestGap * TIMELINE_MS >= 300)
      result.warnings.push(
        `stall: the subscriber received nothing for ${longestGap * TIMELINE_MS} ms inside the window`,
      );

    // Loss: after the drain, QoS 1 messages the publishers had acknowledged must all have arrived.
    const lost = ackedTotal - receivedTotal;
    const qos1 = scenario === 'xqos1' || scenario === 'xpqos1';
    if (qos1 && lost > 0)
      result.warnings.push(
        `QoS 1: ${lost} of ${ackedTotal} acknowledged messages never reached the subscriber (after a ${results.map((r) => r.drainedMs ?? 0).join('/')} ms drain)`,
      );
    if (qos1 && sentTotal - ackedTotal > 0)
      result.warnings.push(
        `QoS 1: ${sentTotal - ackedTotal} of ${sentTotal} messages sent were never acknowledged`,
      );
    if (unexpectedCloses > 0) result.warnings.push(`${unexpectedCloses} client connections closed by a node`);

    // ---- processes
    const windowMs = wall1 - wall0;
    const samples: NodeSample[] = watched.map((w, i) => ({
      label: w.label,
      pid: w.pid,
      rssStartKB: rssStart[i],
      rssEndKB: rssEnd[i],
      rssPeakKB: rssPeak.get(w.pid) ?? rssEnd[i],
      rssAfterDrainKB: rssAfterDrain[i],
      cpuPct: ((cpu1[i] - cpu0[i]) / windowMs) * 100,
    }));

    // ---- Redis
    if (redis !== undefined && info0 !== undefined && info1 !== undefined) {
      const delta = commandDelta(commandCalls(info0), commandCalls(info1));
      let calls = 0;
      for (const n of delta.values()) calls += n;
      const perSec = calls / (windowMs / 1000);
      result.metrics.cmdsPerMsg = delivered > 0 ? perSec / delivered : Number.NaN;
      const perCommand: Record<string, number> = {};
      for (const [name, n] of [...delta.entries()].sort((x, y) => y[1] - x[1]))
        perCommand[name] = delivered > 0 ? n / (windowMs / 1000) / delivered : Number.NaN;
      const info2 = await redis.info('memory', 'stats', 'clients', 'keyspace');
      const inboxKeys = nodes.map((n) => `shoal:inbox:{${n.label}}`);
      const inboxLens = contender === 'shoal-cluster' ? await redis.xlens(inboxKeys) : [];
      const dbsize = Number(await redis.call('DBSIZE'));
      Object.assign(result.details, {
        redisCallsInWindow: calls,
        redisCallsPerSec: perSec,
        redisPerCommandPerMsg: perCommand,
        redisUsedMemoryKB: {
          windowStart: Math.round(num0(info0.used_memory) / 1024),
          windowEnd: Math.round(num0(info1.used_memory) / 1024),
          afterDrain: Math.round(num0(info2.used_memory) / 1024),
        },
        redisMaxOutputBufferKB: Math.round(
          Math.max(num0(info1.client_recent_max_output_buffer), num0(info2.client_recent_max_output_buffer)) /
            1024,
        ),
        redisConnectionsDuringWindow:
          num0(info1.total_connections_received) - num0(info0.total_connections_received),
        redisOutputBufferDisconnects: outputBufferDisconnects(info2),
        redisConnectedClients: num0(info2.connected_clients),
        redisPubsubClients: num0(info2.pubsub_clients),
        redisKeys: dbsize,
        inboxLengthsAfterDrain:
          contender === 'shoal-cluster'
            ? Object.fromEntries(inboxKeys.map((k, i) => [k, inboxLens[i]]))
            : undefined,
      });
      const disc = outputBufferDisconnects(info2);
      if (disc > 0)
        result.warnings.push(`redis: ${disc} client(s) disconnected for exceeding an output buffer limit`);
      const reconnects = num0(info1.total_connections_received) - num0(info0.total_connections_received);
      if (reconnects > 0)
        result.warnings.push(`redis: ${reconnects} new connection(s) during the window (reconnects?)`);
    }

    Object.assign(result.details, {
      deliveredPerSec: delivered,
      sentPerSec: sent,
      ackedPerSec: acked,
      sentTotal,
      ackedTotal,
      receivedTotal,
      lostAfterDrain: qos1 ? lost : undefined,
      drainedMs: results.map((r) => r.drainedMs),
      generatorCpuPct: genCpu * 100,
      processes: samples,
      latency,
      longestGapMs: longestGap * TIMELINE_MS,
      minPerIntervalInWindow: Number.isFinite(minBucket) ? minBucket : undefined,
      timeline: subTimeline,
      skipped: results.reduce((s, r) => s + r.skipped, 0),
      unexpectedCloses,
    });
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    if (rssTimer !== undefined) clearInterval(rssTimer);
    const statuses = await Promise.all(workers.map((w) => w.stop()));
    for (const [i, w] of workers.entries()) {
      if (w.stderr.trim() !== '')
        result.warnings.push(`load worker ${i} stderr: ${w.stderr.trim().slice(-1500)}`);
      const s = statuses[i];
      if (s !== undefined && s.errors.length > 0 && result.error !== undefined)
        result.warnings.push(
          `load worker ${i}: ${s.unexpectedCloses} unexpected closes; ${s.errors.slice(0, 5).join(' | ')}`,
        );
    }
    const exits: Record<string, unknown> = {};
    for (const n of nodes) {
      const exit = await n.server.stop();
      const name = `node ${n.label}`;
      if (exit.stats !== undefined) exits[name] = exit.stats;
      if (exit.crashed) result.warnings.push(`${name} crashed (code ${exit.code}, signal ${exit.signal})`);
      if (exit.stderr.trim() !== '')
        result.warnings.push(`${name} stderr: ${exit.stderr.trim().slice(-3000)}`);
      const dropped = exit.stats?.dropped as Record<string, number> | undefined;
      if (dropped !== undefined && Object.keys(dropped).length > 0)
        result.warnings.push(`${name} dropped messages: ${JSON.stringify(dropped)}`);
      // (The first line of a full 64 KB tail may be cut: dropped when it is not a whole JSON line.)
      const logLines = exit.stdout
        .split('\n')
        .filter((l, i) => i > 0 || l.startsWith('{'))
        .filter((l) => l.trim() !== '' && !l.includes('"bench.exit"') && !l.includes('"bench.listening"'));
      if (logLines.length > 0) result.warnings.push(`${name} log: ${summarizeLog(logLines)}`);
    }
    result.details.nodeExitStats = exits;
    if (windowTo > 0 && contender !== 'aedes-cluster') {
      const progress: Record<string, NodeProgress> = {};
      for (const [name, stats] of Object.entries(exits)) {
        const role = contender === 'shoal-single' ? 'local' : name === 'node b' ? 'receiving' : 'forwarding';
        const p = nodeProgress(stats as Record<string, unknown>, role, windowFrom, windowTo);
        if (p === undefined) continue;
        progress[name] = p;
        if (p.longestStallMs >= 500)
          result.warnings.push(
            `${name}: no progress (${p.counter}) for ${p.longestStallMs} ms inside the window, with up to ${p.maxBacklog} messages waiting in the node`,
          );
      }
      result.details.nodeProgress = progress;
    }
    if (redis !== undefined) {
      const exit = await redis.stop();
      if (exit.crashed)
        result.warnings.push(`redis-server crashed (code ${exit.code}, signal ${exit.signal})`);
      const out = `${exit.stdout}${exit.stderr}`
        .split('\n')
        .filter(
          (l) =>
            /#|WARNING|error/i.test(l) &&
            !/overcommit_memory|Redis version|Configuration loaded|oO0OoO0OoO0Oo|Server initialized|Ready to accept|Running mode|monotonic clock|supervised/i.test(
              l,
            ),
        );
      if (out.length > 0) result.details.redisLog = out.slice(-10);
    }
  }
  return result;
}

/** Log lines counted by their `event` (pino JSON), with the first and the last line in full. */
function summarizeLog(lines: string[]): string {
  const counts = new Map<string, number>();
  for (const line of lines) {
    let event = 'other';
    try {
      const o = JSON.parse(line) as { event?: string; reason?: string };
      event = `${o.event ?? 'no event'}${o.reason !== undefined ? ` (${o.reason})` : ''}`;
    } catch {
      // not JSON (a stack trace line)
    }
    counts.set(event, (counts.get(event) ?? 0) + 1);
  }
  const byEvent = [...counts].map(([e, n]) => `${e} x${n}`).join(', ');
  const shown = lines.length === 1 ? lines : [lines[0], lines[lines.length - 1]];
  return `${lines.length} line(s): ${byEvent}\n${shown.join('\n')}`;
}

interface NodeProgress {
  /** The counter watched: what the node hands on. */
  counter: string;
  /** Longest time inside the window over which that counter did not move (sample resolution). */
  longestStallMs: number;
  /** Most messages taken in but not yet handed on (nor dropped), at any sample in the window. */
  maxBacklog: number;
  heapUsedKB: { windowStart: number; windowEnd: number; last: number };
  rssKB: { windowStart: number; windowEnd: number; last: number };
}

/**
 * From a Shoal node's samples (shoal-cluster-server.ts): stalls and backlog inside the window.
 * Receiving node (b): messagesSent must follow clusterMessagesReceived. Forwarding node (a) and
 * single node: messagesReceived, and what was received but not yet passed on (to Redis, or to
 * the subscriber; fan-in has one subscriber, so one message in is one message out).
 */
function nodeProgress(
  stats: Record<string, unknown>,
  role: 'receiving' | 'forwarding' | 'local',
  from: number,
  to: number,
): NodeProgress | undefined {
  const fields = stats.sampleFields as string[] | undefined;
  const samples = stats.samples as number[][] | undefined;
  if (fields === undefined || samples === undefined || samples.length === 0) return undefined;
  const f = (name: string): number => fields.indexOf(name);
  const [T, RECV, SENT, CSENT, CRECV, DROP, RSS, HEAP] = [
    'epochMs',
    'messagesReceived',
    'messagesSent',
    'clusterMessagesSent',
    'clusterMessagesReceived',
    'dropped',
    'rssKB',
    'heapUsedKB',
  ].map(f);
  const counter = role === 'receiving' ? SENT : RECV;
  const inWindow = samples.filter((s) => s[T] >= from && s[T] <= to);
  let longest = 0;
  let lastChange = inWindow[0]?.[T] ?? from;
  let prev = inWindow[0]?.[counter] ?? 0;
  let maxBacklog = 0;
  for (const s of inWindow) {
    if (s[counter] !== prev) {
      prev = s[counter];
      lastChange = s[T];
    } else longest = Math.max(longest, s[T] - lastChange);
    const backlog =
      role === 'receiving'
        ? s[CRECV] - s[SENT] - s[DROP]
        : role === 'forwarding'
          ? s[RECV] - s[CSENT] - s[DROP]
          : s[RECV] - s[SENT] - s[DROP];
    maxBacklog = Math.max(maxBacklog, backlog);
  }
  const first = inWindow[0] ?? samples[0];
  const lastInWindow = inWindow[inWindow.length - 1] ?? samples[samples.length - 1];
  const last = samples[samples.length - 1];
  return {
    counter: fields[counter],
    longestStallMs: longest,
    maxBacklog,
    heapUsedKB: { windowStart: first[HEAP], windowEnd: lastInWindow[HEAP], last: last[HEAP] },
    rssKB: { windowStart: first[RSS], windowEnd: lastInWindow[RSS], last: last[RSS] },
  };
}

function outputBufferDisconnects(info: Info): number {
  const v = info.client_output_buffer_limit_disconnections;
  return v === undefined ? 0 : num0(v);
}

// ---- run ---------------------------------------------------------------------------------------------------

log(`bench:cluster: Shoal from ${launchers.shoalNote}`);
log(`bench:cluster: ${scenarios.join(', ')} x ${rounds} round(s) x ${contenders.join(', ')}`);
const trials: TrialResult[] = [];
const t0 = Date.now();
for (const scenario of scenarios) {
  for (let round = 1; round <= rounds; round++) {
    for (const contender of contenders) {
      const started = Date.now();
      const trial = await runTrial(scenario, contender, round);
      trials.push(trial);
      log(
        `[${scenario} ${round}/${rounds}] ${contender.padEnd(13)} ${describe(trial)} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      );
      for (const w of trial.warnings) log(`    ! ${w.split('\n').join('\n      ')}`);
    }
  }
}
const elapsedMs = Date.now() - t0;

function fmtMs(v: number): string {
  if (Number.isNaN(v)) return 'n/a';
  return v < 1 ? v.toFixed(3) : v.toFixed(2);
}

function fmtCmds(v: number): string {
  if (Number.isNaN(v)) return 'n/a';
  return v < 0.01 ? v.toFixed(4) : v.toFixed(3);
}

function describe(t: TrialResult): string {
  if (t.error !== undefined) return `FAILED: ${t.error.split('\n')[0]}`;
  const parts: string[] = [];
  const d = t.details;
  if (t.scenario === 'xlatency') parts.push(`p50 ${fmtMs(t.metrics.p50)} ms, p99 ${fmtMs(t.metrics.p99)} ms`);
  else parts.push(`${formatRate(t.metrics.delivered)} msg/s`);
  if (t.metrics.cmdsPerMsg !== undefined) parts.push(`${fmtCmds(t.metrics.cmdsPerMsg)} cmd/msg`);
  const procs = d.processes as NodeSample[] | undefined;
  if (procs !== undefined)
    parts.push(
      procs.map((p) => `${p.label} ${Math.round(p.cpuPct)}% ${Math.round(p.rssPeakKB / 1024)} MB`).join(', '),
    );
  if (typeof d.generatorCpuPct === 'number') parts.push(`load ${Math.round(d.generatorCpuPct)}%`);
  return parts.join(', ');
}

function medianOf(scenario: Scenario, contender: Contender, key: string): number {
  const xs = trials
    .filter((t) => t.scenario === scenario && t.contender === contender && t.error === undefined)
    .map((t) => t.metrics[key])
    .filter((v) => v !== undefined && !Number.isNaN(v));
  return xs.length === 0 ? Number.NaN : median(xs);
}

interface Row {
  scenario: Scenario;
  key: string;
  label: string;
  unit: string;
  format: (v: number) => string;
  /** Ratios make sense (throughput and latency). */
  ratios: boolean;
}
const ROWS: Row[] = [];
for (const s of scenarios) {
  if (s === 'xfanin')
    ROWS.push({
      scenario: s,
      key: 'delivered',
      label: 'xfanin: QoS 0, 10 pub on A → 1 sub on B',
      unit: 'msg/s',
      format: formatRate,
      ratios: true,
    });
  if (s === 'xqos1')
    ROWS.push({
      scenario: s,
      key: 'delivered',
      label: 'xqos1: QoS 1, 10 pub (window 100) on A → 1 QoS 1 sub on B',
      unit: 'msg/s',
      format: formatRate,
      ratios: true,
    });
  if (s === 'xpqos1')
    ROWS.push({
      scenario: s,
      key: 'delivered',
      label: 'xpqos1: QoS 1, 10 pub (window 100) on A → 1 persistent-session QoS 1 sub on B',
      unit: 'msg/s',
      format: formatRate,
      ratios: true,
    });
  if (s === 'xlatency') {
    ROWS.push({
      scenario: s,
      key: 'p50',
      label: 'xlatency: p50 at 5,000 msg/s A → B',
      unit: 'ms',
      format: fmtMs,
      ratios: true,
    });
    ROWS.push({
      scenario: s,
      key: 'p99',
      label: 'xlatency: p99 at 5,000 msg/s A → B',
      unit: 'ms',
      format: fmtMs,
      ratios: true,
    });
  }
}
for (const s of scenarios)
  ROWS.push({
    scenario: s,
    key: 'cmdsPerMsg',
    label: `${s}: Redis commands per delivered message`,
    unit: 'cmd/msg',
    format: fmtCmds,
    ratios: false,
  });

const has = (c: Contender): boolean => contenders.includes(c);
const headers = [
  'Scenario (unit)',
  ...contenders.map((c) => `${NAMES[c]} median`),
  ...(has('shoal-cluster') && has('aedes-cluster') ? ['Shoal cluster / Aedes cluster'] : []),
  ...(has('shoal-cluster') && has('shoal-single') ? ['Shoal cluster / Shoal single'] : []),
];
const rows: string[][] = [];
const summary: Record<string, Record<string, number>> = {};
for (const r of ROWS) {
  const medians = Object.fromEntries(contenders.map((c) => [c, medianOf(r.scenario, c, r.key)])) as Record<
    Contender,
    number
  >;
  summary[`${r.scenario}.${r.key}`] = medians;
  const row = [
    `${r.label} (${r.unit})`,
    ...contenders.map((c) => (c === 'shoal-single' && r.key === 'cmdsPerMsg' ? '—' : r.format(medians[c]))),
  ];
  const ratio = (a: number, b: number): string => {
    const x = a / b;
    return r.ratios && Number.isFinite(x) ? formatRatio(x) : '';
  };
  if (has('shoal-cluster') && has('aedes-cluster'))
    row.push(ratio(medians['shoal-cluster'], medians['aedes-cluster']));
  if (has('shoal-cluster') && has('shoal-single'))
    row.push(ratio(medians['shoal-cluster'], medians['shoal-single']));
  rows.push(row);
}

function targets(): string[] {
  const lines: string[] = [];
  const get = (key: string, c: Contender): number => summary[key]?.[c] ?? Number.NaN;
  const check = (what: string, ok: boolean, detail: string): void => {
    lines.push(`- ${ok ? 'met' : 'NOT met'}: ${what} (${detail})`);
  };
  if (!has('shoal-cluster')) return lines;
  for (const s of ['xfanin', 'xqos1'] as const) {
    if (!scenarios.includes(s)) continue;
    const key = `${s}.delivered`;
    if (has('aedes-cluster')) {
      const r = get(key, 'shoal-cluster') / get(key, 'aedes-cluster');
      check(`${s} >= 3x Aedes + Redis`, r >= 3, formatRatio(r));
    }
    if (has('shoal-single')) {
      const r = get(key, 'shoal-cluster') / get(key, 'shoal-single');
      check(`${s} >= 0.7x Shoal single node`, r >= 0.7, formatRatio(r));
    }
  }
  if (scenarios.includes('xlatency')) {
    const p99 = get('xlatency.p99', 'shoal-cluster');
    const aedes = has('aedes-cluster')
      ? `; Aedes + Redis ${fmtMs(get('xlatency.p99', 'aedes-cluster'))} ms`
      : '';
    check('xlatency p99 <= 3 ms at 5,000 msg/s', p99 <= 3, `${fmtMs(p99)} ms${aedes}`);
  }
  for (const s of ['xfanin', 'xqos1'] as const) {
    if (!scenarios.includes(s)) continue;
    const v = get(`${s}.cmdsPerMsg`, 'shoal-cluster');
    const aedes = has('aedes-cluster')
      ? `; Aedes + Redis ${fmtCmds(get(`${s}.cmdsPerMsg`, 'aedes-cluster'))}`
      : '';
    check(
      `${s}: well under 1 Redis command per message at load (read here as <= 0.1)`,
      v <= 0.1,
      `${fmtCmds(v)}${aedes}`,
    );
  }
  return lines;
}

function kb(v: number): string {
  return Number.isFinite(v) ? `${formatRate(v / 1024)} MB` : 'n/a';
}

/** Per-round values and what else was measured. */
function detailRows(): string[][] {
  const out: string[][] = [];
  for (const s of scenarios) {
    for (const c of contenders) {
      const ts = trials.filter((t) => t.scenario === s && t.contender === c);
      const main = s === 'xlatency' ? ['p50', 'p99'] : ['delivered'];
      const perRound = main
        .map((k) =>
          ts
            .map((t) =>
              t.error !== undefined
                ? 'FAIL'
                : k === 'delivered'
                  ? formatRate(t.metrics[k])
                  : fmtMs(t.metrics[k]),
            )
            .join(' / '),
        )
        .join('; ');
      const cmds =
        c === 'shoal-single'
          ? ''
          : ts.map((t) => (t.error !== undefined ? 'FAIL' : fmtCmds(t.metrics.cmdsPerMsg))).join(' / ');
      const ok = ts.filter((t) => t.error === undefined);
      const cpu = (label: string): string => {
        const xs = ok
          .map(
            (t) => (t.details.processes as NodeSample[] | undefined)?.find((p) => p.label === label)?.cpuPct,
          )
          .filter((v): v is number => typeof v === 'number');
        return xs.length === 0 ? '' : `${Math.round(median(xs))}%`;
      };
      const labels = c === 'shoal-single' ? ['a'] : NODE_LABELS.slice(0, nodeCount);
      const cpus = [
        ...labels.map((l) => `${l.toUpperCase()} ${cpu(`node ${l}`)}`),
        ...(c === 'shoal-single' ? [] : [`Redis ${cpu('redis')}`]),
      ].join(', ');
      const load = ok.map((t) => t.details.generatorCpuPct as number).filter((v) => typeof v === 'number');
      const peak = (label: string): string => {
        const xs = ok
          .map((t) => (t.details.processes as NodeSample[] | undefined)?.find((p) => p.label === label))
          .filter((p): p is NodeSample => p !== undefined);
        if (xs.length === 0) return '';
        return `${kb(median(xs.map((p) => p.rssStartKB)))} → ${kb(median(xs.map((p) => p.rssPeakKB)))}`;
      };
      const mem = [
        ...labels.map((l) => `${l.toUpperCase()} ${peak(`node ${l}`)}`),
        ...(c === 'shoal-single' ? [] : [`Redis ${peak('redis')}`]),
      ].join('; ');
      const extra: string[] = [];
      if (s === 'xlatency') {
        const mx = ok.map((t) => (t.details.latency as { maxMs: number } | undefined)?.maxMs ?? Number.NaN);
        extra.push(`max ${mx.map((v) => v.toFixed(1)).join(' / ')} ms`);
      } else {
        extra.push(`sent ${formatRate(median(ok.map((t) => t.details.sentPerSec as number)))} msg/s`);
      }
      if (s === 'xqos1' || s === 'xpqos1')
        extra.push(`lost after drain ${ok.map((t) => String(t.details.lostAfterDrain)).join(' / ')}`);
      const gaps = ok.map((t) => t.details.longestGapMs as number);
      if (gaps.some((g) => g > 0)) extra.push(`longest gap ${gaps.join(' / ')} ms`);
      if (c !== 'shoal-single') {
        const used = ok.map(
          (t) => (t.details.redisUsedMemoryKB as { windowEnd: number } | undefined)?.windowEnd,
        );
        extra.push(
          `Redis used_memory at window end ${used.map((v) => (v === undefined ? '?' : kb(v))).join(' / ')}`,
        );
      }
      if (c !== 'aedes-cluster') {
        const stalls = ok.map((t) => {
          const p = t.details.nodeProgress as Record<string, NodeProgress> | undefined;
          return p === undefined
            ? '?'
            : Object.values(p)
                .map((x) => x.longestStallMs)
                .join('+');
        });
        extra.push(`longest node stall ${stalls.join(' / ')} ms`);
      }
      if (c === 'shoal-cluster') {
        const lens = ok.map((t) => {
          const l = t.details.inboxLengthsAfterDrain as Record<string, number> | undefined;
          return l === undefined ? '?' : Object.values(l).join('+');
        });
        extra.push(`inbox XLEN after drain ${lens.join(' / ')}`);
      }
      const warnings = ts.reduce((sum, t) => sum + t.warnings.length, 0);
      out.push([
        s,
        NAMES[c],
        perRound,
        cmds,
        cpus,
        load.length === 0 ? '' : `${Math.round(median(load))}%`,
        mem,
        extra.join(', '),
        warnings === 0 ? '' : String(warnings),
      ]);
    }
  }
  return out;
}

/** Redis commands per delivered message, by command (median over rounds), for the cluster contenders. */
function commandRows(): string[][] {
  const out: string[][] = [];
  for (const s of scenarios) {
    for (const c of contenders) {
      if (c === 'shoal-single') continue;
      const ok = trials.filter((t) => t.scenario === s && t.contender === c && t.error === undefined);
      const names = new Set<string>();
      for (const t of ok)
        for (const n of Object.keys((t.details.redisPerCommandPerMsg as object) ?? {})) names.add(n);
      const parts = [...names]
        .map((n) => {
          const xs = ok.map((t) => (t.details.redisPerCommandPerMsg as Record<string, number>)?.[n] ?? 0);
          return [n, median(xs)] as const;
        })
        .sort((a, b) => b[1] - a[1])
        .slice(0, 8)
        .map(([n, v]) => `${n} ${fmtCmds(v)}`);
      const callsPerSec = ok.map((t) => t.details.redisCallsPerSec as number);
      out.push([
        s,
        NAMES[c],
        callsPerSec.length === 0 ? '' : formatRate(median(callsPerSec)),
        parts.join(', '),
      ]);
    }
  }
  return out;
}

const cpuList = cpus();
const limits = openFileLimits();
const meta = {
  date: startedAt.toISOString(),
  command,
  node: process.version,
  cpu: `${cpuList[0]?.model ?? 'unknown'} x ${cpuList.length}`,
  loadAverageAtStart: loadAtStart.map((x) => Number(x.toFixed(2))),
  loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(2))),
  shoal: launchers.shoalNote,
  versions,
  openFiles: `soft ${limits.soft}, hard ${limits.hard}`,
  elapsedSeconds: Math.round(elapsedMs / 1000),
};

const out: string[] = [];
out.push(`Command: \`${command}\``);
out.push('');
out.push(`- Date: ${meta.date}; took ${meta.elapsedSeconds} s`);
out.push(
  `- Node ${meta.node}; CPU ${meta.cpu}; load average ${meta.loadAverageAtStart.join(' ')} at start, ${meta.loadAverageAtEnd.join(' ')} at end`,
);
out.push(
  `- Shoal: ${shoalCli ? meta.shoal : `bench/servers/shoal-cluster-server.ts (loadConfig + startServer, as the CLI) from ${meta.shoal}`}; log level ${logLevel}`,
);
out.push(
  `- Aedes ${versions.aedes} with mqemitter-redis ${versions.mqemitterRedis} and aedes-persistence-redis ${versions.persistenceRedis}; ${versions.redis} (fresh per trial, no persistence)`,
);
out.push(
  `- ${rounds} round(s), contenders in the order ${contenders.map((c) => NAMES[c]).join(', ')} each round; ${config.warmupMs / 1000} s warm-up + ${config.durationMs / 1000} s measured, drain up to ${drainMs / 1000} s; payload ${config.payloadSize} B, MQTT 3.1.1; ${config.workers} load worker process(es) for xfanin/xqos1; ${nodeCount} node(s) per cluster`,
);
out.push('');
out.push(markdownTable(headers, rows, ['left', ...headers.slice(1).map(() => 'right' as const)]));
out.push('');
const t = targets();
if (t.length > 0) {
  out.push('Targets (same run):');
  out.push('');
  out.push(...t);
  out.push('');
}
out.push('Per round (values in round order) and context (medians over rounds):');
out.push('');
out.push(
  markdownTable(
    [
      'Scenario',
      'Contender',
      'Per round',
      'cmd/msg per round',
      'CPU in window',
      'Load CPU',
      'RSS start → peak',
      'Also measured',
      'Warnings',
    ],
    detailRows(),
    ['left', 'left', 'right', 'right', 'left', 'right', 'left', 'left', 'right'],
  ),
);
if (contenders.some((c) => c !== 'shoal-single')) {
  out.push('');
  out.push(
    'Redis commands in the window, by command (per delivered message, median over rounds; Lua-internal calls count too):',
  );
  out.push('');
  out.push(
    markdownTable(['Scenario', 'Contender', 'Commands/s', 'Top commands per message'], commandRows(), [
      'left',
      'left',
      'right',
      'left',
    ]),
  );
}
const failed = trials.filter((x) => x.error !== undefined);
const warned = trials.filter((x) => x.warnings.length > 0);
if (failed.length > 0 || warned.length > 0) {
  out.push('');
  out.push('Failures and warnings:');
  out.push('');
  for (const x of [...failed, ...warned.filter((w) => w.error === undefined)]) {
    const head = `- ${x.scenario} round ${x.round}, ${NAMES[x.contender]}`;
    if (x.error !== undefined) out.push(`${head}: FAILED: ${x.error.split('\n').join(' ')}`);
    for (const w of x.warnings) out.push(`${head}: ${w.split('\n').join('\n    ')}`);
  }
}
console.log(out.join('\n'));

if (jsonPath !== undefined) {
  writeFileSync(
    jsonPath,
    `${JSON.stringify({ meta, config: { ...config, drainMs }, summary, trials }, null, 2)}\n`,
  );
  log(`bench:cluster: wrote ${jsonPath}`);
}
process.exit(0);
