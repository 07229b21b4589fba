/**
 * Writes docs/conformance.md: every normative statement id ([MQTT-x.y.z-n]) named by a test, with the
 * tests that check it. `node --import tsx scripts/conformance.ts` rewrites the file;
 * `--check` exits 1 when the file is out of date (run by test/unit/docs.test.ts).
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'docs/conformance.md');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory()
      ? files(p)
      : p.endsWith('.test.ts') || p.endsWith('.contract.ts')
        ? [p]
        : [];
  });
}

const idPattern = /\[MQTT-(\d+(?:\.\d+)*)-(\d+)\]/g;
const testPattern = /\b(?:it|test)\(\s*(['"`])((?:(?!\1).)*\[MQTT-[^\]]+\](?:(?!\1).)*)\1/g;

export function render(): string {
  const byId = new Map<string, Set<string>>();
  for (const file of files(join(root, 'test')).sort()) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(testPattern)) {
      const title = m[2];
      for (const id of title.matchAll(idPattern)) {
        const key = `MQTT-${id[1]}-${id[2]}`;
        let set = byId.get(key);
        if (set === undefined) {
          set = new Set();
          byId.set(key, set);
        }
        set.add(`\`${relative(root, file)}\`: ${title.replace(/\|/g, '\\|')}`);
      }
    }
  }
  const ids = [...byId.keys()].sort((a, b) => {
    const pa = a.slice(5).split(/[.-]/).map(Number);
    const pb = b.slice(5).split(/[.-]/).map(Number);
    for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
      const d = (pa[i] ?? -1) - (pb[i] ?? -1);
      if (d !== 0) return d;
    }
    return 0;
  });
  const lines = [
    '# Conformance',
    '',
    'Normative statements of the MQTT specifications (ids as in MQTT 5.0, or 3.1.1 where 5.0 has no such',
    'rule) and the tests that check them. Generated from the test names by `node --import tsx scripts/conformance.ts`;',
    '`npm test` fails when this file is out of date.',
    '',
    `${ids.length} statements are covered.`,
    '',
    '| Statement | Tests |',
    '| --- | --- |',
  ];
  for (const id of ids) lines.push(`| ${id} | ${[...byId.get(id)!].join('<br>')} |`);
  return `${lines.join('\n')}\n`;
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  const text = render();
  if (process.argv.includes('--check')) {
    const current = (() => {
      try {
        return readFileSync(out, 'utf8');
      } catch {
        return '';
      }
    })();
    if (current !== text) {
      console.error('docs/conformance.md is out of date: run node --import tsx scripts/conformance.ts');
      process.exit(1);
    }
  } else {
    writeFileSync(out, text);
    console.log(`wrote ${relative(root, out)}`);
  }
}
