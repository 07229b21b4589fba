import { readFileSync } from 'node:fs';
import { expect, it } from 'vitest';
import { render } from '../../../scripts/conformance.js';

it('docs/conformance.md lists the statement ids the tests name (node --import tsx scripts/conformance.ts)', () => {
  const file = readFileSync(new URL('../../../docs/conformance.md', import.meta.url), 'utf8');
  expect(file).toBe(render());
});
