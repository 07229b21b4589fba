/**
 * `shoal passwd` through the real command line (a child process running the CLI from the sources),
 * with the password on standard input: create, update, delete; the hashes verify; nothing echoes.
 */
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parsePasswordFile, verifyPassword } from '../../../src/auth/password-file.js';
import { cleanup, tempDir } from './helpers.js';

afterEach(cleanup);

const root = new URL('../../../', import.meta.url).pathname;

/** Runs `shoal ...args` with `input` on stdin; resolves with its exit code and output. */
function shoal(
  args: string[],
  input: string,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/helpers/shoal-main.ts', ...args], {
      cwd: root,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('shoal passwd (CLI)', () => {
  it('creates, updates and deletes users; the password is never printed', async () => {
    const file = path.join(await tempDir(), 'users.passwd');
    const users = async () => parsePasswordFile(await readFile(file, 'utf8'));

    let r = await shoal(['passwd', file, 'alice'], 'first-Secret\n');
    expect(r).toEqual({ code: 0, stdout: `created user alice in ${file}\n`, stderr: '' });
    r = await shoal(['passwd', file, 'bob'], 'bobs-Secret\n');
    expect(r.code).toBe(0);
    expect(await verifyPassword('first-Secret', (await users()).get('alice')!)).toBe(true);

    r = await shoal(['passwd', file, 'alice'], 'second-Secret\n');
    expect(r).toEqual({ code: 0, stdout: `updated user alice in ${file}\n`, stderr: '' });
    expect(await verifyPassword('second-Secret', (await users()).get('alice')!)).toBe(true);
    expect(await verifyPassword('first-Secret', (await users()).get('alice')!)).toBe(false);

    r = await shoal(['passwd', file, 'alice', '--delete'], '');
    expect(r).toEqual({ code: 0, stdout: `deleted user alice from ${file}\n`, stderr: '' });
    expect([...(await users()).keys()]).toEqual(['bob']);

    r = await shoal(['passwd', file, 'alice', '--delete'], '');
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`shoal passwd: no user alice in ${file}\n`);
    const text = await readFile(file, 'utf8');
    expect(text).not.toMatch(/Secret/);
  });

  it('exits 2 on bad usage', async () => {
    const r = await shoal(['passwd', 'only-a-file'], '');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('Usage: shoal passwd FILE USER');
  });
});
