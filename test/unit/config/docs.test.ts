import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BINDINGS, CONFIG_FILE_BINDING } from '../../../src/config/load.js';
import { configFields } from '../../../src/config/schema.js';

const doc = readFileSync(new URL('../../../docs/configuration.md', import.meta.url), 'utf8');

/** The reference table's rows, by key: the cells after the key. */
const reference = doc.slice(doc.indexOf('## Reference'), doc.indexOf('\n## ', doc.indexOf('## Reference')));
const rows = new Map(
  reference
    .split('\n')
    .filter((line) => line.startsWith('| `'))
    .map((line) => {
      const cells = line.split('|').map((c) => c.trim());
      return [cells[1].replaceAll('`', ''), cells.slice(2).join(' | ')] as const;
    }),
);

describe('docs/configuration.md', () => {
  it.each(configFields().map((f) => [f.path, f.field] as const))(
    'documents %s with its type and default',
    (p, field) => {
      const row = rows.get(p);
      expect(row, `no row for ${p}`).toBeDefined();
      expect(row).toContain(`\`${JSON.stringify(field.default)}\``);
    },
  );

  it('documents no key the schema lacks', () => {
    const known = new Set(configFields().map((f) => f.path));
    expect([...rows.keys()].filter((k) => !known.has(k))).toEqual([]);
  });

  it.each(BINDINGS.map((b) => [b.path, b] as const))('documents the flag and variable of %s', (p, b) => {
    expect(rows.get(p)).toContain(`\`--${b.flag}\``);
    expect(rows.get(p)).toContain(`\`${b.env}\``);
  });

  it('documents the config file flag and variable', () => {
    expect(doc).toContain(`\`--${CONFIG_FILE_BINDING.flag}\``);
    expect(doc).toContain(`\`${CONFIG_FILE_BINDING.env}\``);
  });
});
