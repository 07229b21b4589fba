import { describe, expect, it } from 'vitest';
import { type CliOutput, main } from '../../src/cli.js';
import { VERSION } from '../../src/version.js';

function output() {
  const out = { stdout: '', stderr: '' };
  const io: CliOutput = {
    stdout: (t) => {
      out.stdout += t;
    },
    stderr: (t) => {
      out.stderr += t;
    },
  };
  return { out, io };
}

describe('shoal CLI', () => {
  it('--help lists every flag and variable', async () => {
    const { out, io } = output();
    expect(await main(['--help'], {}, io)).toBe(0);
    for (const flag of [
      '--host',
      '--port',
      '--ws-port',
      '--http-port',
      '--redis',
      '--node-id',
      '--config',
      '--log-level',
    ]) {
      expect(out.stdout).toContain(flag);
    }
    expect(out.stdout).toContain('SHOAL_WS_PORT');
  });

  it('--version prints the package version', async () => {
    const { out, io } = output();
    expect(await main(['--version'], {}, io)).toBe(0);
    expect(out.stdout).toBe(`${VERSION}\n`);
  });

  it('exits 2 naming the problem on bad configuration', async () => {
    const { out, io } = output();
    expect(await main(['start', '--prot', '1'], {}, io)).toBe(2);
    expect(out.stderr).toBe('shoal: --prot: unknown option\n');
    const env = output();
    expect(await main([], { SHOAL_PORT: 'abc' }, env.io)).toBe(2);
    expect(env.out.stderr).toBe('shoal: port (SHOAL_PORT): must be an integer 0..65535, got "abc"\n');
  });

  it('exits 2 on a Redis URL of an unknown scheme, without echoing it (it may hold a password)', async () => {
    const { out, io } = output();
    expect(
      await main(['--redis', 'http://user:secret@localhost:6379', '--log-level', 'silent'], {}, io),
    ).toBe(2);
    expect(out.stderr).toContain('redis (--redis): must be a redis://');
    expect(out.stderr).not.toContain('secret');
  });
});
