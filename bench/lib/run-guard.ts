/**
 * What every benchmark runner sets up first: a hard deadline for the whole run, broker processes
 * killed on SIGINT/SIGTERM and at exit, and a work directory that is removed at exit.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killLiveBrokers } from '../servers/index.js';

/** Installs the safety nets and returns the run's fresh work directory. */
export function guardRun(name: string, deadlineMs: number): string {
  setTimeout(() => {
    console.error(`${name}: run deadline (${deadlineMs / 60_000} min) reached, stopping`);
    killLiveBrokers();
    process.exit(1);
  }, deadlineMs).unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      killLiveBrokers();
      process.exit(130);
    });
  }
  const dir = mkdtempSync(join(tmpdir(), `shoal-${name.replace(/[^a-z]+/g, '-')}-`));
  process.on('exit', () => {
    killLiveBrokers();
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** The command line that started this run, as the user typed it. */
export function commandLine(script: string, file: string, argv: readonly string[]): string {
  return process.env.npm_lifecycle_event === script
    ? `npm run ${script}${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`
    : `node --import tsx ${file} ${argv.join(' ')}`.trim();
}
