/**
 * One trial = one fresh broker process + fresh load worker processes running one scenario. This
 * module builds the worker jobs for each scenario, drives the workers through their phases with a
 * timeout on every wait, samples the broker's CPU time and RSS, and turns what comes back into
 * metrics. Nothing here waits without a bound: a broker or worker that hangs fails the trial.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type BrokerExit,
  type BrokerName,
  type RunningBroker,
  type SpawnPrefix,
  wrapCommand,
} from '../servers/index.js';
import type {
  FromWorker,
  IdleResult,
  Job,
  LoadResult,
  PublisherSpec,
  SubscriberSpec,
  ToWorker,
} from './messages.js';

export type ScenarioName = 'fanin' | 'fanout' | 'qos1' | 'pqos1' | 'latency' | 'idle';
/** The single-node benchmark's scenarios (pqos1 is the cluster benchmark's). */
export const SCENARIOS: readonly ScenarioName[] = ['fanin', 'fanout', 'qos1', 'latency', 'idle'];

export interface MetricDef {
  key: string;
  label: string;
  unit: string;
  better: 'higher' | 'lower';
}

/** The headline numbers of each scenario, in table order. */
export const METRICS: Record<ScenarioName, MetricDef[]> = {
  fanin: [
    { key: 'delivered', label: 'Fan-in QoS 0, 10 pub → 1 sub', unit: 'msg/s delivered', better: 'higher' },
  ],
  fanout: [
    { key: 'delivered', label: 'Fan-out QoS 0, 1 pub → 100 sub', unit: 'msg/s delivered', better: 'higher' },
  ],
  qos1: [
    {
      key: 'delivered',
      label: 'QoS 1, 10 pub (window 100) → 1 sub',
      unit: 'msg/s delivered',
      better: 'higher',
    },
  ],
  pqos1: [
    {
      key: 'delivered',
      label: 'QoS 1 to a persistent session, 10 pub (window 100) → 1 sub',
      unit: 'msg/s delivered',
      better: 'higher',
    },
  ],
  latency: [
    { key: 'p50', label: 'Latency p50 at 5,000 msg/s', unit: 'ms', better: 'lower' },
    { key: 'p99', label: 'Latency p99 at 5,000 msg/s', unit: 'ms', better: 'lower' },
    { key: 'p999', label: 'Latency p99.9 at 5,000 msg/s', unit: 'ms', better: 'lower' },
  ],
  idle: [
    { key: 'kbPerConn', label: 'Idle connections: RSS', unit: 'KB/conn', better: 'lower' },
    { key: 'connectRate', label: 'Idle connections: connect rate', unit: 'conn/s', better: 'higher' },
  ],
};

export interface TrialConfig {
  warmupMs: number;
  durationMs: number;
  /** Publishers run this much longer than the window, so every worker's window is under load. */
  tailMs: number;
  payloadSize: number;
  /** Load worker processes for the throughput scenarios (latency always uses one). */
  workers: number;
  latencyRate: number;
  /**
   * 0: fan-in and fan-out publishers flood (as fast as TCP lets them). Otherwise the total rate
   * (msg/s) they offer, paced like the latency publisher: shows how delivery follows load below
   * and above a broker's capacity.
   */
  offeredRate: number;
  latencyTickMs: number;
  /** qos1 / pqos1: the subscriber acknowledges this many ms after it read (0: at once). */
  ackDelayMs: number;
  idleConnections: number;
  /** Above this many idle connections, spread them over several 127.0.0.x source addresses. */
  idlePerSourceAddress: number;
  /**
   * Connection attempts in flight at once, over all workers. Keep it below the smallest listen
   * backlog (Mosquitto: 100), else SYNs are dropped and retransmitted after 1 s, and the connect
   * rate measures the backlog instead of the broker.
   */
  idleConcurrency: number;
  idleTimeoutMs: number;
  /** Most idle connections one worker process opens (its open-files limit). */
  idlePerWorker: number;
  setupTimeoutMs: number;
  workerPrefix: SpawnPrefix;
}

export interface TrialResult {
  scenario: ScenarioName;
  broker: BrokerName;
  round: number;
  metrics: Record<string, number>;
  /** Everything else measured (rates, CPU, RSS, per-worker results). */
  details: Record<string, unknown>;
  error?: string;
  /** Things that look wrong: unexpected disconnects, drops, crashes, broker stderr. */
  warnings: string[];
  brokerExit?: Omit<BrokerExit, 'stdout'> & { stdoutTail: string };
}

// ---- worker processes ----------------------------------------------------------------------------------

const WORKER = join(dirname(fileURLToPath(import.meta.url)), 'worker.ts');

/**
 * A worker process driven over IPC: the load generator (worker.ts) by default, or another script
 * with its own messages (`From`, `To`; bench/load/storm-worker.ts). A message `{ type: 'failed' }`
 * fails the wait; `{ type: 'exit' }` asks the worker to close its sockets and exit.
 */
export class WorkerProcess<
  From extends { type: string } = FromWorker,
  To extends { type: string } = ToWorker,
> {
  readonly child: ChildProcess;
  private readonly inbox: From[] = [];
  private waiter: (() => void) | null = null;
  exited = false;
  stderr = '';

  constructor(prefix: SpawnPrefix, script = WORKER) {
    const [cmd, argv] = wrapCommand(process.execPath, ['--import', 'tsx', script], prefix);
    this.child = spawn(cmd, argv, { stdio: ['ignore', 'inherit', 'pipe', 'ipc'] });
    this.child.stderr?.on('data', (c: Buffer) => {
      if (this.stderr.length < 20_000) this.stderr += c.toString();
    });
    this.child.on('message', (m: From) => {
      this.inbox.push(m);
      this.waiter?.();
    });
    this.child.once('exit', () => {
      this.exited = true;
      this.waiter?.();
    });
    this.child.once('error', (err) => {
      this.stderr += `spawn error: ${err.message}\n`;
      this.exited = true;
      this.waiter?.();
    });
  }

  send(message: To | { type: 'exit' }): void {
    if (!this.exited && this.child.connected) this.child.send(message);
  }

  /** The next message of `type`; rejects on 'failed', on exit and after `timeoutMs`. */
  async next<T extends From['type']>(type: T, timeoutMs: number): Promise<Extract<From, { type: T }>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type || m.type === 'failed');
      if (i >= 0) {
        const [m] = this.inbox.splice(i, 1);
        if (m.type === 'failed')
          throw new Error(`load worker failed: ${(m as { message?: string }).message}`);
        return m as Extract<From, { type: T }>;
      }
      if (this.exited)
        throw new Error(
          `load worker exited while waiting for '${type}'. stderr: ${this.stderr.slice(-2000)}`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`load worker: no '${type}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = null;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = null;
          resolve();
        };
      });
    }
  }

  /** Asks the worker to close its sockets and exit; kills it if it has not after `ms`. */
  async stop(ms = 3000): Promise<Extract<From, { type: 'status' }> | undefined> {
    if (this.exited) return undefined;
    this.send({ type: 'exit' });
    let status: Extract<From, { type: 'status' }> | undefined;
    try {
      status = (await this.next('status' as From['type'], ms)) as Extract<From, { type: 'status' }>;
    } catch {
      // fall through to the kill
    }
    const deadline = Date.now() + ms;
    while (!this.exited && Date.now() < deadline) await sleep(20);
    if (!this.exited) this.child.kill('SIGKILL');
    return status;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// ---- jobs per scenario ----------------------------------------------------------------------------------

function spread<T>(items: T[], slots: number): T[][] {
  const out: T[][] = Array.from({ length: slots }, () => []);
  for (const [i, item] of items.entries()) out[i % slots].push(item);
  return out;
}

/**
 * Publishers and subscribers for a throughput or latency scenario, split over worker processes:
 * with two or more workers, publishers go to the first half and subscribers to the second, so the
 * side that counts (the subscribers) never competes with a flooding publisher for its event loop.
 */
export function loadJobs(
  scenario: ScenarioName,
  port: number,
  c: TrialConfig,
  tag: string,
  subscriberPort?: number,
): Job[] {
  const pubs: PublisherSpec[] = [];
  const subs: SubscriberSpec[] = [];
  const payloadSize = c.payloadSize;
  switch (scenario) {
    case 'fanin':
      for (let i = 0; i < 10; i++)
        pubs.push({
          clientId: `${tag}p${i}`,
          topic: `bench/in/${i}`,
          qos: 0,
          payloadSize,
          mode: 'flood',
          batch: 100,
        });
      subs.push({ clientId: `${tag}s0`, filter: 'bench/in/+', qos: 0, latency: false });
      break;
    case 'fanout':
      pubs.push({ clientId: `${tag}p0`, topic: 'bench/out', qos: 0, payloadSize, mode: 'flood', batch: 100 });
      for (let i = 0; i < 100; i++)
        subs.push({ clientId: `${tag}s${i}`, filter: 'bench/out', qos: 0, latency: false });
      break;
    case 'qos1':
    case 'pqos1': {
      // pqos1: to a subscriber with a persistent session (3.1.1 Clean Session 0), whose messages the
      // broker keeps until acknowledged (a Shoal cluster: in the session's queue in Redis).
      const persistent = scenario === 'pqos1';
      const base = persistent ? 'bench/pq1' : 'bench/q1';
      for (let i = 0; i < 10; i++)
        pubs.push({
          clientId: `${tag}p${i}`,
          topic: `${base}/${i}`,
          qos: 1,
          payloadSize,
          mode: 'window',
          window: 100,
        });
      subs.push({
        clientId: `${tag}s0`,
        filter: `${base}/+`,
        qos: 1,
        latency: false,
        persistent,
        ackDelayMs: c.ackDelayMs,
      });
      break;
    }
    case 'latency':
      pubs.push({
        clientId: `${tag}p0`,
        topic: 'bench/lat',
        qos: 0,
        payloadSize: Math.max(8, payloadSize),
        mode: 'paced',
        rate: c.latencyRate,
        tickMs: c.latencyTickMs,
      });
      subs.push({ clientId: `${tag}s0`, filter: 'bench/lat', qos: 0, latency: true });
      break;
    case 'idle':
      throw new Error('idle has its own jobs');
  }
  if (c.offeredRate > 0 && (scenario === 'fanin' || scenario === 'fanout')) {
    for (const p of pubs) {
      p.mode = 'paced';
      p.rate = c.offeredRate / pubs.length;
      p.tickMs = c.latencyTickMs;
    }
  }
  const base = { host: '127.0.0.1', port, subscriberPort, setupTimeoutMs: c.setupTimeoutMs };
  const workers = scenario === 'latency' ? 1 : Math.max(1, c.workers);
  if (workers === 1) return [{ ...base, publishers: pubs, subscribers: subs }];
  const pubSlots = Math.floor(workers / 2);
  const pubParts = spread(pubs, pubSlots);
  const subParts = spread(subs, workers - pubSlots);
  return [
    ...pubParts.map((p) => ({ ...base, publishers: p, subscribers: [] })),
    ...subParts.map((s) => ({ ...base, publishers: [], subscribers: s })),
  ];
}

/** Explicit source ports for spread-out idle connections: below the kernel's ephemeral range. */
const IDLE_PORTS: [number, number] = [20_000, 32_000];

function idleJobs(port: number, c: TrialConfig, tag: string): Job[] {
  const n = c.idleConnections;
  const workers = Math.max(2, Math.ceil(n / c.idlePerWorker));
  // Up to idlePerSourceAddress, the kernel picks source ports from its ephemeral range (~28,000
  // towards one destination, shared with everything else on the machine). Above, each worker gets
  // its own source addresses 127.0.0.2... with explicit ports, at most 10,000 per address.
  const perAddress = Math.min(10_000, IDLE_PORTS[1] - IDLE_PORTS[0]);
  const sources = n > c.idlePerSourceAddress ? Math.max(workers, Math.ceil(n / perAddress)) : 0;
  const jobs: Job[] = [];
  for (let w = 0; w < workers; w++) {
    const count = Math.floor(n / workers) + (w < n % workers ? 1 : 0);
    const localAddresses: string[] = [];
    for (let a = w; a < sources; a += workers)
      localAddresses.push(`127.0.${Math.floor((a + 2) / 256)}.${(a + 2) % 256}`);
    jobs.push({
      host: '127.0.0.1',
      port,
      publishers: [],
      subscribers: [],
      setupTimeoutMs: c.setupTimeoutMs,
      idle: {
        count,
        clientIdPrefix: `${tag}i${w}-`,
        localAddresses,
        localPorts: localAddresses.length > 0 ? IDLE_PORTS : undefined,
        concurrency: Math.max(1, Math.floor(c.idleConcurrency / workers)),
        timeoutMs: c.idleTimeoutMs,
      },
    });
  }
  return jobs;
}

// ---- running a trial ------------------------------------------------------------------------------------

export interface TrialContext {
  scenario: ScenarioName;
  broker: BrokerName;
  round: number;
  config: TrialConfig;
  /** Starts the broker (fresh process) and resolves once it accepts connections. */
  startBroker: () => Promise<RunningBroker>;
}

let trialCounter = 0;

export async function runTrial(ctx: TrialContext): Promise<TrialResult> {
  const { scenario, config: c } = ctx;
  const tag = `t${++trialCounter}`;
  const result: TrialResult = {
    scenario,
    broker: ctx.broker,
    round: ctx.round,
    metrics: {},
    details: {},
    warnings: [],
  };
  let broker: RunningBroker | undefined;
  let workers: WorkerProcess[] = [];
  try {
    // Broker and worker processes start in parallel (tsx makes worker start-up the slower one).
    const brokerStarting = ctx.startBroker();
    brokerStarting.catch(() => undefined);
    const pendingJobs = (port: number): Job[] =>
      scenario === 'idle' ? idleJobs(port, c, tag) : loadJobs(scenario, port, c, tag);
    const workerCount =
      scenario === 'idle' ? idleJobs(0, c, tag).length : loadJobs(scenario, 0, c, tag).length;
    workers = Array.from({ length: workerCount }, () => new WorkerProcess(c.workerPrefix));
    broker = await brokerStarting;
    result.details.brokerPid = broker.pid;
    const jobs = pendingJobs(broker.port);
    for (const [i, job] of jobs.entries()) workers[i].send({ type: 'job', job });
    await Promise.all(workers.map((w) => w.next('ready', c.setupTimeoutMs + 15_000)));
    if (scenario === 'idle') await idleTrial(broker, workers, jobs, c, result);
    else await loadTrial(broker, workers, c, result);
    if (!broker.alive()) result.warnings.push(`${ctx.broker} exited after the measurement window`);
  } catch (err) {
    result.error = (err as Error).message;
  } finally {
    const statuses = await Promise.all(workers.map((w) => w.stop()));
    for (const [i, w] of workers.entries()) {
      const s = statuses[i];
      if (w.stderr.trim() !== '')
        result.warnings.push(`load worker ${i} stderr: ${w.stderr.trim().slice(-1500)}`);
      // Load trials report their errors with their results; idle ones (and failed trials) only here.
      if (s !== undefined && s.errors.length > 0 && (scenario === 'idle' || result.error !== undefined)) {
        result.warnings.push(
          `load worker ${i}: ${s.unexpectedCloses} unexpected closes; ${s.errors.slice(0, 5).join(' | ')}`,
        );
      }
    }
    if (broker !== undefined) {
      const exit = await broker.stop();
      const { stdout, ...rest } = exit;
      result.brokerExit = { ...rest, stdoutTail: stdout.slice(-4000) };
      if (exit.crashed)
        result.warnings.push(`${ctx.broker} crashed (code ${exit.code}, signal ${exit.signal})`);
      if (exit.stderr.trim() !== '')
        result.warnings.push(`${ctx.broker} stderr: ${exit.stderr.trim().slice(-3000)}`);
      const dropped = exit.stats?.dropped as Record<string, number> | undefined;
      if (dropped !== undefined && Object.keys(dropped).length > 0)
        result.warnings.push(`${ctx.broker} dropped messages: ${JSON.stringify(dropped)}`);
      if (exit.stats !== undefined) result.details.brokerExitStats = exit.stats;
      // Any log line the launcher did not write itself (a warn/error log, a stack trace).
      const logLines = stdout
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.includes('"bench.exit"') && !l.includes('"bench.listening"'));
      if (logLines.length > 0)
        result.warnings.push(`${ctx.broker} stdout: ${logLines.slice(-10).join('\n')}`);
    }
  }
  return result;
}

async function loadTrial(
  broker: RunningBroker,
  workers: WorkerProcess[],
  c: TrialConfig,
  result: TrialResult,
): Promise<void> {
  const rssStart = broker.rssKB();
  for (const w of workers)
    w.send({ type: 'start', warmupMs: c.warmupMs, durationMs: c.durationMs, tailMs: c.tailMs });
  const t0 = Date.now();
  await sleep(c.warmupMs);
  const cpu0 = broker.cpuMs();
  const wall0 = Date.now();
  await sleep(Math.max(0, c.warmupMs + c.durationMs - (Date.now() - t0)));
  const cpu1 = broker.cpuMs();
  const wall1 = Date.now();
  const rssEnd = broker.rssKB();
  // A broker that died inside the window invalidates the trial; one that dies later (tail,
  // teardown) is reported, but what was measured stands.
  if (!broker.alive()) throw new Error(`${result.broker} exited during the measurement window`);
  // Hard stop at twice the trial length (plus slack for a loaded machine).
  const left = 2 * (c.warmupMs + c.durationMs) + 5_000 - (Date.now() - t0);
  const results: LoadResult[] = [];
  for (const w of workers) results.push((await w.next('result', Math.max(1_000, left))).result);

  let delivered = 0;
  let sent = 0;
  let acked = 0;
  let genCpu = 0;
  let genCpuSystem = 0;
  let unexpectedCloses = 0;
  const perSubscriber: number[] = [];
  for (const r of results) {
    const sec = r.windowMs / 1000;
    delivered += r.received / sec;
    sent += r.sent / sec;
    acked += r.acked / sec;
    genCpu += r.cpuMs / r.windowMs;
    genCpuSystem += r.cpuSystemMs / r.windowMs;
    unexpectedCloses += r.unexpectedCloses;
    for (const n of r.perSubscriber) perSubscriber.push(n / sec);
    if (r.errors.length > 0) result.warnings.push(`load errors: ${r.errors.slice(0, 5).join(' | ')}`);
  }
  const latency = results.find((r) => r.latency !== undefined)?.latency;
  if (latency !== undefined) {
    result.metrics.p50 = latency.p50Ms;
    result.metrics.p99 = latency.p99Ms;
    result.metrics.p999 = latency.p999Ms;
    result.details.latency = latency;
    const expected = (c.latencyRate * c.durationMs) / 1000;
    if (latency.count < expected * 0.95)
      result.warnings.push(
        `latency: only ${latency.count} of ~${Math.round(expected)} messages arrived in the window`,
      );
  } else {
    result.metrics.delivered = delivered;
  }
  const brokerCpu = ((cpu1 - cpu0) / (wall1 - wall0)) * 100;
  Object.assign(result.details, {
    deliveredPerSec: delivered,
    sentPerSec: sent,
    ackedPerSec: acked,
    brokerCpuPct: brokerCpu,
    generatorCpuPct: genCpu * 100,
    generatorSystemCpuPct: genCpuSystem * 100,
    brokerRssStartKB: rssStart,
    brokerRssEndKB: rssEnd,
    perSubscriberMin: perSubscriber.length > 0 ? Math.min(...perSubscriber) : undefined,
    perSubscriberMax: perSubscriber.length > 0 ? Math.max(...perSubscriber) : undefined,
    skipped: results.reduce((s, r) => s + r.skipped, 0),
    unexpectedCloses,
    workers: results.map((r) => ({ ...r, perSubscriber: undefined, errors: r.errors.slice(0, 5) })),
  });
  if (unexpectedCloses > 0)
    result.warnings.push(`${unexpectedCloses} client connections closed by the broker`);
}

async function idleTrial(
  broker: RunningBroker,
  workers: WorkerProcess[],
  jobs: Job[],
  c: TrialConfig,
  result: TrialResult,
): Promise<void> {
  await sleep(500);
  const rssBefore = broker.rssKB();
  for (const w of workers) w.send({ type: 'start', warmupMs: 0, durationMs: 0, tailMs: 0 });
  const results: IdleResult[] = [];
  for (const w of workers) results.push((await w.next('idle-done', c.idleTimeoutMs + 10_000)).result);
  const opened = results.reduce((s, r) => s + r.opened, 0);
  const failed = results.reduce((s, r) => s + r.failed, 0);
  const first = Math.min(...results.map((r) => r.firstAttemptMs));
  const last = Math.max(...results.map((r) => r.lastConnackMs));
  const slowConnects = results.reduce((s, r) => s + r.slowConnects, 0);
  const maxConnectMs = Math.max(...results.map((r) => r.maxConnectMs));
  // Let the broker settle (allocations of the connect burst, lazy frees), then take the RSS: the
  // first reading after at least 2 s that moved by less than 1% over the previous 500 ms, at most 5 s.
  await sleep(1500);
  let prev = broker.rssKB();
  let rssAfter = prev;
  for (let i = 0; i < 7; i++) {
    await sleep(500);
    rssAfter = broker.rssKB();
    if (Math.abs(rssAfter - prev) < prev * 0.01) break;
    prev = rssAfter;
  }
  const requested = jobs.reduce((s, j) => s + (j.idle?.count ?? 0), 0);
  result.metrics.kbPerConn = opened > 0 ? (rssAfter - rssBefore) / opened : Number.NaN;
  result.metrics.connectRate = opened > 0 ? opened / ((last - first) / 1000) : Number.NaN;
  Object.assign(result.details, {
    requested,
    opened,
    failed,
    connectSeconds: (last - first) / 1000,
    maxConnectMs,
    slowConnects,
    brokerRssBeforeKB: rssBefore,
    brokerRssAfterKB: rssAfter,
    sourceAddresses: jobs.reduce((s, j) => s + (j.idle?.localAddresses.length ?? 0), 0),
    workers: workers.length,
  });
  if (slowConnects > 0)
    result.warnings.push(
      `idle: ${slowConnects} connections took over 1 s (slowest ${Math.round(maxConnectMs)} ms)`,
    );
  if (opened < requested)
    result.warnings.push(
      `idle: ${opened} of ${requested} connections opened (${failed} failed); ${results
        .flatMap((r) => r.errors)
        .slice(0, 5)
        .join(' | ')}`,
    );
}
