/**
 * The embedded stores a single node's persistence.dir could use, compared on what the DiskJournal
 * does: group commits of small records, each commit forced to disk (fsync) before it resolves.
 * classic-level (LevelDB, what Shoal uses) against lmdb (LMDB), alternating per round.
 *
 *   npm i --no-save lmdb && node --import tsx bench/stores.ts [--rounds 5]
 *
 * Reports records/s (median over rounds) per commit size: 1 (persistence.sync always under low
 * load) and 100 (batch: a busy event-loop turn). Node 20 has no node:sqlite; better-sqlite3 needs a
 * native build or a download at install, which the brief rules out.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { median } from './lib/stats.js';

interface Store {
  commit(records: [string, Buffer][]): Promise<void>;
  close(): Promise<void>;
}

const rounds = Number(process.argv[process.argv.indexOf('--rounds') + 1] || 5);
const value = Buffer.alloc(200, 7);

async function level(dir: string): Promise<Store> {
  const db = new ClassicLevel<string, Buffer>(dir, { keyEncoding: 'utf8', valueEncoding: 'buffer' });
  await db.open();
  return {
    commit: (records) =>
      db.batch(
        records.map(([key, v]) => ({ type: 'put' as const, key, value: v })),
        { sync: true },
      ),
    close: () => db.close(),
  };
}

async function lmdb(dir: string): Promise<Store> {
  let mod: { open(options: object): LmdbDb };
  try {
    mod = (await import('lmdb' as string)) as typeof mod;
  } catch {
    console.error('bench/stores: lmdb is not installed (npm i --no-save lmdb)');
    process.exit(2);
  }
  const db = mod.open({ path: dir, compression: false, encoding: 'binary' });
  return {
    commit: async (records) => {
      await db.transaction(() => {
        for (const [key, v] of records) db.put(key, v);
      });
    },
    close: () => db.close(),
  };
}

interface LmdbDb {
  transaction(work: () => void): Promise<unknown>;
  put(key: string, value: Buffer): void;
  close(): Promise<void>;
}

async function run(make: (dir: string) => Promise<Store>, perCommit: number, total: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'shoal-stores-'));
  try {
    const store = await make(dir);
    const started = performance.now();
    for (let i = 0; i < total; i += perCommit) {
      const records: [string, Buffer][] = [];
      for (let j = 0; j < perCommit; j++)
        records.push([`q\u0000c\u0000${(i + j).toString(36).padStart(11, '0')}`, value]);
      await store.commit(records);
    }
    const ms = performance.now() - started;
    await store.close();
    return (total / ms) * 1000;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rows: string[] = [
  '| records per commit | classic-level (records/s) | lmdb (records/s) | classic-level / lmdb |',
  '| --- | --- | --- | --- |',
];
for (const [perCommit, total] of [
  [1, 500],
  [100, 20_000],
] as const) {
  const a: number[] = [];
  const b: number[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(await run(level, perCommit, total));
    b.push(await run(lmdb, perCommit, total));
  }
  const ma = median(a);
  const mb = median(b);
  rows.push(`| ${perCommit} | ${Math.round(ma)} | ${Math.round(mb)} | ${(ma / mb).toFixed(2)} |`);
}
console.log(`${rows.join('\n')}\n\n${rounds} rounds, alternating; 200-byte values, fsync per commit.`);
