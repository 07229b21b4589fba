/**
 * `npm run verify -- [--profile ci|long] [--target shoal|aedes|both] [--seed N] [--faults a,b]
 * [--minutes M] [--nodes 3-5]`: runs one segment per fault class (workload + nemesis + settle),
 * checks each segment's history, prints a Markdown table per target and writes
 * verify/results/<target>-<profile>.md. Exit code 1 when a promise of docs/guarantees.md is broken.
 * See docs/verifier.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAllTracked } from '../test/helpers/processes.js';
import { check, VIOLATION_KINDS } from './check.js';
import { History } from './history.js';
import type { Target } from './launcher.js';
import { runNemesis, shapeFor, supported } from './nemesis.js';
import { FAULT_CLASSES, type FaultClass } from './promises.js';
import { breaks, examples, type SegmentResult, table } from './report.js';
import { seeded } from './rng.js';
import { type RedisShape, startTopology, type Topology } from './topology.js';
import { Workload } from './workload.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function flag(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

const profile = flag('profile') ?? 'ci';
const seed = Number(flag('seed') ?? Math.floor(Math.random() * 2 ** 31));
const targetArg = flag('target') ?? 'shoal';
const nodes = Math.min(5, Math.max(3, Number(flag('nodes') ?? 3)));
const minutes = Number(flag('minutes') ?? (profile === 'long' ? 30 : 0));

const CI_FAULTS: FaultClass[] = [
  'none',
  'kill',
  'pause-short',
  'pause-long',
  'partition-long',
  'redis-restart-aof',
  'takeover',
  'slow-consumer',
  'cluster-master-kill',
];
const faults =
  (flag('faults')?.split(',') as FaultClass[] | undefined) ??
  (profile === 'long' ? FAULT_CLASSES.filter(supported) : CI_FAULTS);
for (const f of faults) {
  if (!FAULT_CLASSES.includes(f) || !supported(f)) {
    console.error(
      `verify: unknown or unsupported fault class ${f} (supported: ${FAULT_CLASSES.filter(supported).join(', ')})`,
    );
    process.exit(2);
  }
}
const targets: Target[] = targetArg === 'both' ? ['shoal', 'aedes'] : [targetArg as Target];
// ci: ~25 s of faults per class; long: the minutes spread over the classes.
const segmentMs =
  profile === 'long'
    ? Math.max(30_000, (minutes * 60_000) / (faults.length * targets.length) - 20_000)
    : 20_000;
const LIVENESS = { livenessTimeoutMs: 1_500, heartbeatMs: 200 };

async function segment(
  topo: Topology,
  target: Target,
  fault: FaultClass,
  index: number,
): Promise<SegmentResult> {
  const started = Date.now();
  const segSeed = (seed + index * 7919) >>> 0;
  const rng = seeded(segSeed);
  const history = new History();
  const workload = new Workload(history, {
    prefix: `v/${index}${fault.replace(/[^a-z]/g, '')}`,
    balancerUrl: topo.balancer.url,
    nodeUrls: topo.nodeUrls,
    rng,
    publishers: 4,
    rate: 25,
    padding: fault === 'slow-consumer' ? 2_000 : 100,
    slowConsumer: fault === 'slow-consumer',
    v5: target === 'shoal',
  });
  await workload.start();
  const applied = await runNemesis({ topo, workload, history, rng }, fault, segmentMs);
  workload.stopPublishing();
  // Settle: wait (bounded) for the owed messages and wills to arrive, after the cluster healed.
  const owed = ['lost-persistent', 'lost-clean', 'lost-shared', 'will-missing'] as const;
  const settleEnd = Date.now() + 20_000;
  while (Date.now() < settleEnd) {
    await new Promise((r) => setTimeout(r, 1_000));
    const r = check(history.events);
    if (
      owed.every((k) => r.counts[k] === 0) &&
      workload.persistent.every((a) => a.connected) &&
      workload.unacknowledged() === 0
    )
      break;
  }
  await workload.close();
  const result = check(history.events);
  const out: SegmentResult = {
    target,
    fault,
    seed: segSeed,
    faultsApplied: applied,
    durationMs: Date.now() - started,
    result,
    broken: breaks(fault, result),
  };
  const found = VIOLATION_KINDS.filter((k) => result.counts[k] > 0).map((k) => `${k}=${result.counts[k]}`);
  console.error(
    `verify: ${target} ${fault}: ${applied} faults, ${result.stats.acked} acked, ${found.join(' ') || 'no violations'}`,
  );
  await mkdir(path.join(HERE, 'results'), { recursive: true });
  await writeFile(
    path.join(HERE, 'results', `${target}-${profile}-${fault}.history.jsonl`),
    history.toJsonLines(),
  );
  // The nodes' logs (the tail each process kept), to read what a violation's node did.
  await Promise.all(
    topo.nodes.map((n, i) =>
      writeFile(path.join(HERE, 'results', `${target}-${profile}-${fault}.node${i}.log`), n.output()),
    ),
  );
  return out;
}

/** The Redis shapes Aedes' launcher can use: mqemitter-redis and aedes-persistence-redis get one host and port. */
const AEDES_SHAPES: RedisShape[] = ['standalone-aof', 'standalone-nopersist'];
const SHAPES: RedisShape[] = ['standalone-aof', 'standalone-nopersist', 'sentinel', 'cluster'];
const notRun: string[] = [];

async function run(target: Target): Promise<SegmentResult[]> {
  const results: SegmentResult[] = [];
  // One topology per Redis shape, with the fault classes that run on it.
  for (const shape of SHAPES) {
    const mine = faults.filter((f) => shapeFor(f) === shape);
    if (mine.length === 0) continue;
    if (target === 'aedes' && !AEDES_SHAPES.includes(shape)) {
      notRun.push(`aedes: ${mine.join(', ')} not run (the Aedes launcher speaks to one standalone Redis)`);
      continue;
    }
    const topo = await startTopology({ target, nodes, redis: shape, ...LIVENESS });
    try {
      for (const f of mine) results.push(await segment(topo, target, f, FAULT_CLASSES.indexOf(f)));
    } finally {
      await topo.stop();
    }
  }
  return results;
}

const began = Date.now();
let exitCode = 0;
try {
  const all: SegmentResult[] = [];
  for (const t of targets) all.push(...(await run(t)));
  const doc = [
    `# Verifier: ${targets.join(' vs ')}, profile ${profile}, seed ${seed}`,
    '',
    `Replay: \`npm run verify -- --profile ${profile} --target ${targetArg} --seed ${seed}${flag('faults') ? ` --faults ${flag('faults')}` : ''}\``,
    `Nodes: ${nodes}; liveness timeout ${LIVENESS.livenessTimeoutMs} ms; ${Math.round((Date.now() - began) / 1000)} s in all.`,
    '',
    table(all),
    '',
    ...notRun.map((l) => `- ${l}`),
    '',
    examples(all),
    '',
  ].join('\n');
  process.stdout.write(doc);
  await mkdir(path.join(HERE, 'results'), { recursive: true });
  await writeFile(path.join(HERE, 'results', `${targetArg}-${profile}.md`), doc);
  // Aedes is judged against Shoal's promises for comparison only: its violations do not fail the run.
  if (all.some((s) => s.target === 'shoal' && s.broken.length > 0)) exitCode = 1;
} catch (err) {
  console.error(`verify: ${(err as Error).stack ?? String(err)}`);
  exitCode = 2;
} finally {
  await killAllTracked();
}
process.exit(exitCode);
