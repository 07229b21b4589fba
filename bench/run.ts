/**
 * Broker benchmark: Shoal against Mosquitto (Debian package) and Aedes (npm dev dependency) on
 * loopback, each broker a fresh child process per trial, the load from separate worker processes
 * (bench/load). Per scenario and round the brokers run in the same order (A B C, A B C, ...), so
 * slow drifts of the machine fall on all of them; the report gives medians over rounds and the
 * ratios Shoal / other.
 *
 *   npm run bench -- [--scenarios fanin,fanout,qos1,latency,idle] [--rounds 3]
 *                    [--brokers shoal,mosquitto,aedes] [--quick] [--json FILE]
 *
 * More: --duration S, --warmup S, --idle N, --workers N, --payload BYTES, --latency-tick-ms MS,
 * --ack-delay-ms MS (the QoS 1 subscriber acknowledges that much after it read: a consumer that far away),
 * --offered-rate MSG_PER_S (fan-in/fan-out publishers paced at this total instead of flooding),
 * --pin (taskset: brokers on CPU 1, load on CPU 0), --shoal-impl dist|build|tsx, --shoal-cli,
 * --shoal-log-level LEVEL, --shoal-base DIR (the dist/ of another commit, run as broker shoal-base).
 * See docs/benchmarks.md.
 */
import { writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from './lib/args.js';
import { commandLine, guardRun } from './lib/run-guard.js';
import { median } from './lib/stats.js';
import { formatRate, formatRatio, markdownTable } from './lib/table.js';
import {
  METRICS,
  type MetricDef,
  runTrial,
  SCENARIOS,
  type ScenarioName,
  type TrialConfig,
  type TrialResult,
} from './load/scenarios.js';
import {
  ALL_BROKERS,
  aedesVersion,
  BROKERS,
  type BrokerName,
  MOSQUITTO_SETTINGS,
  mosquittoVersion,
  openFileLimits,
  prepareLaunchers,
  type ShoalImpl,
  startBroker,
} from './servers/index.js';

// ---- options -------------------------------------------------------------------------------------------

const argv = process.argv.slice(2);

function usage(message: string): never {
  console.error(`bench: ${message}`);
  console.error(
    'usage: npm run bench -- [--scenarios fanin,fanout,qos1,latency,idle] [--rounds N] [--brokers shoal,mosquitto,aedes]\n' +
      '                        [--quick] [--json FILE] [--duration S] [--warmup S] [--idle N] [--workers N]\n' +
      '                        [--payload BYTES] [--latency-tick-ms MS] [--ack-delay-ms MS] [--offered-rate MSG_PER_S] [--pin]\n' +
      '                        [--shoal-impl dist|build|tsx]' +
      ' [--shoal-cli] [--shoal-log-level LEVEL] [--shoal-base DIR]',
  );
  process.exit(2);
}

const FLAGS = new Set(['--quick', '--pin', '--shoal-cli']);
const VALUED = new Set([
  '--scenarios',
  '--rounds',
  '--brokers',
  '--json',
  '--duration',
  '--warmup',
  '--idle',
  '--workers',
  '--payload',
  '--latency-tick-ms',
  '--ack-delay-ms',
  '--offered-rate',
  '--shoal-impl',
  '--shoal-log-level',
  '--shoal-base',
]);
const args = parseArgs(argv, FLAGS, VALUED, usage);
const values = args.values;
const { list, num } = args;

const quick = values.has('--quick');
// pqos1 (to a persistent session) is not in the default set: the persistence comparison runs it.
const scenarios = values.has('--scenarios')
  ? list<ScenarioName>('--scenarios', [...SCENARIOS, 'pqos1'])
  : [...SCENARIOS];
const brokers = values.has('--brokers') ? list<BrokerName>('--brokers', ALL_BROKERS) : [...BROKERS];
const rounds = num('--rounds', quick ? 1 : 3, 1, 20);
const jsonPath = values.get('--json');
const pin = values.has('--pin');
const shoalImplFlag = values.get('--shoal-impl');
if (shoalImplFlag !== undefined && !['dist', 'build', 'tsx'].includes(shoalImplFlag))
  usage('--shoal-impl must be dist, build or tsx');
const shoalLogLevel = values.get('--shoal-log-level') ?? 'silent';

const limits = openFileLimits();
const idleDefault = quick ? 2_000 : 10_000;
// The broker holds one descriptor per connection: keep N below its open-files limit.
const idleMax = Number.isFinite(limits.hard) ? limits.hard - 200 : 1_000_000;
const config: TrialConfig = {
  warmupMs: num('--warmup', quick ? 0.5 : 1, 0, 60) * 1000,
  durationMs: num('--duration', quick ? 2 : 5, 0.5, 120) * 1000,
  tailMs: 300,
  payloadSize: num('--payload', 64, 8, 65_000),
  workers: num('--workers', 2, 1, 8),
  latencyRate: 5_000,
  offeredRate: num('--offered-rate', 0, 0, 10_000_000),
  latencyTickMs: num('--latency-tick-ms', 2, 1, 100),
  ackDelayMs: num('--ack-delay-ms', 0, 0, 1000),
  idleConnections: num('--idle', idleDefault, 1, idleMax),
  idlePerSourceAddress: 15_000,
  idleConcurrency: 64,
  idleTimeoutMs: 90_000,
  idlePerWorker: Math.max(
    1_000,
    Math.min(9_000, (Number.isFinite(limits.hard) ? limits.hard : 20_000) - 500),
  ),
  setupTimeoutMs: 15_000,
  workerPrefix: { raiseNofile: true, cpus: pin ? '0' : undefined },
};

/** A whole run never takes longer than this; past it everything is killed. */
const runDir = guardRun('bench', 45 * 60_000);
const command = commandLine('bench', 'bench/run.ts', argv);
const startedAt = new Date();
const loadAtStart = loadavg();
const launchers = await prepareLaunchers({
  buildDir: join(runDir, 'build'),
  shoalImpl: shoalImplFlag as ShoalImpl | undefined,
  shoalCli: values.has('--shoal-cli'),
});
const versions = { mosquitto: await mosquittoVersion(), aedes: aedesVersion() };

const log = (line: string): void => {
  process.stderr.write(`${line}\n`);
};
log(`bench: Shoal from ${launchers.shoalNote}`);
log(`bench: ${scenarios.join(', ')} x ${rounds} round(s) x ${brokers.join(', ')}`);

const trials: TrialResult[] = [];
const t0 = Date.now();
for (const scenario of scenarios) {
  for (let round = 1; round <= rounds; round++) {
    for (const broker of brokers) {
      const started = Date.now();
      const trial = await runTrial({
        scenario,
        broker,
        round,
        config,
        startBroker: () =>
          startBroker(broker, {
            launchers,
            workDir: runDir,
            prefix: { raiseNofile: true, cpus: pin ? '1' : undefined },
            shoalLogLevel,
            startTimeoutMs: 15_000,
            shoalBase: values.get('--shoal-base'),
          }),
      });
      trials.push(trial);
      log(
        `[${scenario} ${round}/${rounds}] ${broker.padEnd(9)} ${describeTrial(trial)} (${((Date.now() - started) / 1000).toFixed(1)} s)`,
      );
      for (const w of trial.warnings) log(`    ! ${w.split('\n').join('\n      ')}`);
    }
  }
}
const elapsedMs = Date.now() - t0;

function describeTrial(t: TrialResult): string {
  if (t.error !== undefined) return `FAILED: ${t.error.split('\n')[0]}`;
  const parts = METRICS[t.scenario].map((m) => `${formatValue(m, t.metrics[m.key])} ${m.unit}`);
  const d = t.details;
  if (typeof d.brokerCpuPct === 'number') parts.push(`broker CPU ${Math.round(d.brokerCpuPct)}%`);
  if (typeof d.generatorCpuPct === 'number') parts.push(`load CPU ${Math.round(d.generatorCpuPct)}%`);
  if (t.scenario !== 'latency' && typeof d.sentPerSec === 'number' && d.sentPerSec > 0)
    parts.push(`sent ${formatRate(d.sentPerSec)} msg/s`);
  if (t.scenario === 'idle')
    parts.push(`${d.opened} conns, RSS ${d.brokerRssBeforeKB} -> ${d.brokerRssAfterKB} KB`);
  return parts.join(', ');
}

// ---- report ------------------------------------------------------------------------------------------------

function formatValue(m: MetricDef, v: number | undefined): string {
  if (v === undefined || Number.isNaN(v)) return 'n/a';
  switch (m.unit) {
    case 'ms':
      return v < 1 ? v.toFixed(3) : v.toFixed(2);
    case 'KB/conn':
      return v.toFixed(1);
    default:
      return formatRate(v);
  }
}

function medianOf(scenario: ScenarioName, broker: BrokerName, key: string): number {
  const xs = trials
    .filter((t) => t.scenario === scenario && t.broker === broker && t.error === undefined)
    .map((t) => t.metrics[key])
    .filter((v) => v !== undefined && !Number.isNaN(v));
  return xs.length === 0 ? Number.NaN : median(xs);
}

const NAMES: Record<BrokerName, string> = {
  shoal: 'Shoal',
  mosquitto: 'Mosquitto',
  aedes: 'Aedes',
  'shoal-disk': 'Shoal disk (batch)',
  'shoal-disk-always': 'Shoal disk (always)',
  'mosquitto-disk': 'Mosquitto persistence',
  'shoal-redis': 'Shoal + Redis (1 node)',
  'shoal-base': 'Shoal (base commit)',
};
const others = brokers.filter((b) => b !== 'shoal');
const headers = [
  'Scenario (unit)',
  ...brokers.map((b) => `${NAMES[b]} median`),
  ...(brokers.includes('shoal') ? others.map((b) => `Shoal/${NAMES[b]}`) : []),
];
const rows: string[][] = [];
const summary: Record<string, Record<string, number>> = {};
for (const scenario of scenarios) {
  for (const m of METRICS[scenario]) {
    const medians = Object.fromEntries(brokers.map((b) => [b, medianOf(scenario, b, m.key)])) as Record<
      BrokerName,
      number
    >;
    summary[`${scenario}.${m.key}`] = medians;
    const acks = (scenario === 'qos1' || scenario === 'pqos1') && config.ackDelayMs > 0;
    const label = acks ? `${m.label}, PUBACK ${config.ackDelayMs} ms after the read` : m.label;
    const row = [`${label} (${m.unit})`, ...brokers.map((b) => formatValue(m, medians[b]))];
    if (brokers.includes('shoal'))
      for (const b of others) {
        const r = medians.shoal / medians[b];
        row.push(Number.isFinite(r) ? formatRatio(r) : 'n/a');
      }
    rows.push(row);
  }
}

/** Per-round values and what else was measured, for judging the medians. */
function detailRows(): string[][] {
  const out: string[][] = [];
  for (const scenario of scenarios) {
    for (const broker of brokers) {
      const ts = trials.filter((t) => t.scenario === scenario && t.broker === broker);
      const perRound = METRICS[scenario]
        .map((m) =>
          ts.map((t) => (t.error !== undefined ? 'FAIL' : formatValue(m, t.metrics[m.key]))).join(' / '),
        )
        .join('; ');
      const okTs = ts.filter((t) => t.error === undefined);
      const med = (key: string): number => {
        const xs = okTs
          .map((t) => t.details[key])
          .filter((v): v is number => typeof v === 'number' && !Number.isNaN(v));
        return xs.length === 0 ? Number.NaN : median(xs);
      };
      const pct = (v: number): string => (Number.isNaN(v) ? '' : `${Math.round(v)}%`);
      let extra = '';
      if (scenario === 'idle') {
        extra = `RSS ${formatRate(med('brokerRssBeforeKB'))} → ${formatRate(med('brokerRssAfterKB'))} KB, ${formatRate(med('opened'))} conns`;
      } else if (scenario === 'latency') {
        const p90 = okTs.map(
          (t) => (t.details.latency as { p90Ms: number } | undefined)?.p90Ms ?? Number.NaN,
        );
        const mx = okTs.map((t) => (t.details.latency as { maxMs: number } | undefined)?.maxMs ?? Number.NaN);
        extra = `p90 ${p90.map((v) => v.toFixed(3)).join(' / ')} ms, max ${mx.map((v) => v.toFixed(1)).join(' / ')} ms`;
      } else {
        extra = `sent ${formatRate(med('sentPerSec'))} msg/s`;
        if (scenario === 'qos1') extra += `, acked ${formatRate(med('ackedPerSec'))} msg/s`;
        if (scenario === 'fanout')
          extra += `, per sub ${formatRate(med('perSubscriberMin'))}–${formatRate(med('perSubscriberMax'))} msg/s`;
        extra += `, broker RSS end ${formatRate(med('brokerRssEndKB'))} KB`;
      }
      const warnings = ts.reduce((s, t) => s + t.warnings.length, 0);
      out.push([
        scenario,
        NAMES[broker],
        perRound,
        pct(med('brokerCpuPct')),
        pct(med('generatorCpuPct')),
        extra,
        warnings === 0 ? '' : String(warnings),
      ]);
    }
  }
  return out;
}

function targets(): string[] {
  const lines: string[] = [];
  const get = (key: string, b: BrokerName): number => summary[key]?.[b] ?? Number.NaN;
  const check = (what: string, ok: boolean, detail: string): void => {
    lines.push(`- ${ok ? 'met' : 'NOT met'}: ${what} (${detail})`);
  };
  if (!brokers.includes('shoal')) return lines;
  for (const s of ['fanin', 'fanout', 'qos1'] as const) {
    if (!scenarios.includes(s)) continue;
    const key = `${s}.delivered`;
    if (brokers.includes('mosquitto')) {
      const r = get(key, 'shoal') / get(key, 'mosquitto');
      check(`${s} >= 1.5x Mosquitto`, r >= 1.5, formatRatio(r));
    }
    if (brokers.includes('aedes')) {
      const r = get(key, 'shoal') / get(key, 'aedes');
      check(`${s} >= 3x Aedes`, r >= 3, formatRatio(r));
    }
  }
  if (scenarios.includes('latency') && brokers.includes('mosquitto')) {
    const s = get('latency.p99', 'shoal');
    const m = get('latency.p99', 'mosquitto');
    check('p99 latency at 5,000 msg/s <= Mosquitto', s <= m, `${s.toFixed(3)} vs ${m.toFixed(3)} ms`);
    const s9 = get('latency.p999', 'shoal');
    const m9 = get('latency.p999', 'mosquitto');
    check('p99.9 latency at 5,000 msg/s <= Mosquitto', s9 <= m9, `${s9.toFixed(3)} vs ${m9.toFixed(3)} ms`);
  }
  if (scenarios.includes('idle')) {
    const kb = get('idle.kbPerConn', 'shoal');
    check('<= 4 KB RSS per idle connection', kb <= 4, `${kb.toFixed(1)} KB/conn`);
  }
  return lines;
}

const cpuList = cpus();
const meta = {
  date: startedAt.toISOString(),
  command,
  node: process.version,
  cpu: `${cpuList[0]?.model ?? 'unknown'} x ${cpuList.length}`,
  loadAverageAtStart: loadAtStart.map((x) => Number(x.toFixed(2))),
  loadAverageAtEnd: loadavg().map((x) => Number(x.toFixed(2))),
  shoal: launchers.shoalNote,
  mosquitto: `${versions.mosquitto}: ${MOSQUITTO_SETTINGS.join(', ')}`,
  aedes: `aedes ${versions.aedes}, default options`,
  openFiles: `soft ${limits.soft}, hard ${limits.hard}`,
  elapsedSeconds: Math.round(elapsedMs / 1000),
};

const idleNote =
  config.idleConnections > config.idlePerSourceAddress
    ? `, spread over source addresses 127.0.0.2... with explicit source ports (more than ${formatRate(config.idlePerSourceAddress)})`
    : '';
const out: string[] = [];
out.push(`Command: \`${command}\``);
out.push('');
out.push(`- Date: ${meta.date}; took ${meta.elapsedSeconds} s`);
out.push(
  `- Node ${meta.node}; CPU ${meta.cpu}; load average ${meta.loadAverageAtStart.join(' ')} at start, ${meta.loadAverageAtEnd.join(' ')} at end`,
);
out.push(`- Shoal: ${meta.shoal}`);
out.push(`- Mosquitto: ${meta.mosquitto}`);
out.push(`- Aedes: ${meta.aedes}`);
out.push(
  `- ${rounds} round(s), brokers in the order ${brokers.map((b) => NAMES[b]).join(', ')} each round; throughput and latency trials: ${config.warmupMs / 1000} s warm-up + ${config.durationMs / 1000} s measured; payload ${config.payloadSize} B, MQTT 3.1.1; ${config.workers} load worker process(es)${config.offeredRate > 0 ? `; fan-in/fan-out publishers paced at ${formatRate(config.offeredRate)} msg/s in total` : ''}${pin ? '; pinned: broker CPU 1, load CPU 0' : ''}`,
);
out.push(
  `- Idle: ${config.idleConnections.toLocaleString('en-US')} connections${idleNote}; open files ${meta.openFiles}`,
);
out.push('');
out.push(markdownTable(headers, rows, ['left', ...headers.slice(1).map(() => 'right' as const)]));
out.push('');
out.push(
  'Ratios are Shoal / other: above 1 is better for msg/s and conn/s, below 1 is better for ms and KB/conn.',
);
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
    ['Scenario', 'Broker', 'Per round', 'Broker CPU', 'Load CPU', 'Also measured', 'Warnings'],
    detailRows(),
    ['left', 'left', 'right', 'right', 'right', 'left', 'right'],
  ),
);
const failed = trials.filter((x) => x.error !== undefined);
const warned = trials.filter((x) => x.warnings.length > 0);
if (failed.length > 0 || warned.length > 0) {
  out.push('');
  out.push('Failures and warnings:');
  out.push('');
  for (const x of [...failed, ...warned.filter((w) => w.error === undefined)]) {
    const head = `- ${x.scenario} round ${x.round}, ${NAMES[x.broker]}`;
    if (x.error !== undefined) out.push(`${head}: FAILED: ${x.error.split('\n').join(' ')}`);
    for (const w of x.warnings) out.push(`${head}: ${w.split('\n').join('\n    ')}`);
  }
}
console.log(out.join('\n'));

if (jsonPath !== undefined) {
  writeFileSync(jsonPath, `${JSON.stringify({ meta, config, summary, trials }, null, 2)}\n`);
  log(`bench: wrote ${jsonPath}`);
}
process.exit(0);
