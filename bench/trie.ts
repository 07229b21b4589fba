/**
 * TopicTrie benchmark: insert time, heap per filter and match throughput at 10k / 100k / 1M filters.
 *
 *   node --expose-gc --import tsx bench/trie.ts            # 10k, 100k, 1M
 *   node --expose-gc --import tsx bench/trie.ts --quick    # 10k, 100k
 *
 * Filters are ~70% exact, ~20% with `+`, ~10% with `#`, in IoT-like shapes, from a seeded PRNG so
 * runs are comparable. Heap per filter is the growth of heapUsed from building the trie, after a full
 * GC on both sides; the filter and key strings are allocated before the baseline, so it counts the
 * index itself (nodes, child maps, level strings), not the caller's strings. Without --expose-gc the
 * heap column is n/a.
 */

import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { TopicTrie } from '../src/topics/index.js';

const quick = process.argv.includes('--quick');
const SIZES = quick ? [10_000, 100_000] : [10_000, 100_000, 1_000_000];
const TOPICS = 50_000; // fixed set of random topics per size
const REPS = 7; // match repetitions; the median is reported
const METRICS = ['temp', 'humidity', 'pressure', 'status', 'battery'];
const SENSORS = ['gps', 'speed', 'fuel', 'engine'];

/** mulberry32: small, fast, deterministic. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Id spaces scale with the number of filters so that exact filters stay mostly distinct. */
function shape(n: number) {
  return {
    sites: Math.max(4, Math.ceil(n / 400)), // x 100 devices x 5 metrics ~ 1.25 n exact site filters
    devices: 100,
    vehicles: Math.max(4, Math.ceil(n / 40)), // x 4 sensors
    tenants: Math.max(2, Math.ceil(n / 2000)), // x 200 users
    users: 200,
  };
}

function makeFilters(n: number, seed: number): string[] {
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)];
  const s = shape(n);
  const seen = new Set<string>();
  const out: string[] = [];
  while (out.length < n) {
    const r = rnd();
    let f: string;
    if (r < 0.7) {
      // exact
      const k = rnd();
      if (k < 0.6) f = `site/${int(s.sites)}/device/${int(s.devices)}/${pick(METRICS)}`;
      else if (k < 0.85) f = `fleet/${int(s.vehicles)}/telemetry/${pick(SENSORS)}`;
      else f = `tenant/${int(s.tenants)}/user/${int(s.users)}/inbox`;
    } else if (r < 0.9) {
      // one or two '+'
      const k = rnd();
      if (k < 0.4) f = `site/${int(s.sites)}/device/+/${pick(METRICS)}`;
      else if (k < 0.6) f = `site/+/device/${int(s.devices)}/${pick(METRICS)}`;
      else if (k < 0.8) f = `fleet/${int(s.vehicles)}/telemetry/+`;
      else if (k < 0.95) f = `site/${int(s.sites)}/device/+/+`;
      else f = `+/${int(s.tenants)}/user/+/inbox`;
    } else {
      // '#'
      const k = rnd();
      if (k < 0.5) f = `site/${int(s.sites)}/device/${int(s.devices)}/#`;
      else if (k < 0.8) f = `site/${int(s.sites)}/#`;
      else if (k < 0.97) f = `fleet/${int(s.vehicles)}/#`;
      else f = `tenant/${int(s.tenants)}/#`;
    }
    if (!seen.has(f)) {
      seen.add(f);
      out.push(f);
    }
  }
  return out;
}

function makeTopics(n: number, count: number, seed: number): string[] {
  const rnd = prng(seed);
  const int = (k: number) => Math.floor(rnd() * k);
  const pick = <T>(xs: readonly T[]) => xs[int(xs.length)];
  const s = shape(n);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const k = rnd();
    if (k < 0.6) out.push(`site/${int(s.sites)}/device/${int(s.devices)}/${pick(METRICS)}`);
    else if (k < 0.85) out.push(`fleet/${int(s.vehicles)}/telemetry/${pick(SENSORS)}`);
    else if (k < 0.95) out.push(`tenant/${int(s.tenants)}/user/${int(s.users)}/inbox`);
    else out.push(`$SYS/broker/clients/${int(1000)}`); // reached by no filter here
  }
  return out;
}

function heapUsed(): number | undefined {
  if (typeof globalThis.gc !== 'function') return undefined;
  globalThis.gc();
  globalThis.gc();
  return process.memoryUsage().heapUsed;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(n: number, digits = 0): string {
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });
}

interface Row {
  filters: number;
  nodesPerFilter: number;
  insertMs: number;
  nsPerInsert: number;
  heapPerFilter: number | undefined;
  matchPerSec: number;
  pairsPerMatch: number;
}

function run(n: number): Row {
  const filters = makeFilters(n, 0x5eed + n);
  const keys = filters.map((_, i) => `client-${i}`);
  const topics = makeTopics(n, TOPICS, 0x70b1c + n);

  const before = heapUsed();
  let trie: TopicTrie<number> | undefined = new TopicTrie<number>();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) trie.add(filters[i], keys[i], i & 3);
  const insertMs = performance.now() - t0;
  const after = heapUsed();
  if (trie.filterCount !== n || trie.entryCount !== n) throw new Error('filters were not distinct');

  let pairs = 0;
  const visit = () => {
    pairs++;
  };
  // Warm-up, then timed repetitions over the same fixed topic set.
  for (let i = 0; i < TOPICS; i++) trie.match(topics[i], visit);
  const rates: number[] = [];
  pairs = 0;
  for (let r = 0; r < REPS; r++) {
    const start = performance.now();
    for (let i = 0; i < TOPICS; i++) trie.match(topics[i], visit);
    rates.push(TOPICS / ((performance.now() - start) / 1000));
  }
  const row: Row = {
    filters: n,
    nodesPerFilter: trie.nodeCount / n,
    insertMs,
    nsPerInsert: (insertMs * 1e6) / n,
    heapPerFilter: before !== undefined && after !== undefined ? (after - before) / n : undefined,
    matchPerSec: median(rates),
    pairsPerMatch: pairs / (TOPICS * REPS),
  };
  trie = undefined;
  return row;
}

const started = performance.now();
const rows: Row[] = [];
for (const n of SIZES) rows.push(run(n));

console.log(
  `TopicTrie benchmark: node ${process.version}, ${os.cpus()[0]?.model ?? 'unknown cpu'} x${os.cpus().length}` +
    `${quick ? ', --quick' : ''}${typeof globalThis.gc === 'function' ? '' : ', no --expose-gc (heap n/a)'}`,
);
console.log(
  `Filters ~70% exact / ~20% '+' / ~10% '#', one entry each; ${fmt(TOPICS)} random topics, ` +
    `median of ${REPS} runs.\n`,
);
console.log(
  '| filters | nodes/filter | insert total (ms) | insert (ns/filter) | heap (B/filter) | match() calls/s | pairs/call |',
);
console.log('|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(
    `| ${fmt(r.filters)} | ${fmt(r.nodesPerFilter, 2)} | ${fmt(r.insertMs)} | ${fmt(r.nsPerInsert)} | ` +
      `${r.heapPerFilter === undefined ? 'n/a' : fmt(r.heapPerFilter)} | ${fmt(r.matchPerSec)} | ${fmt(r.pairsPerMatch, 2)} |`,
  );
}
console.log(`\nTotal ${fmt((performance.now() - started) / 1000, 1)} s`);
