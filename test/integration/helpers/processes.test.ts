import { afterEach, describe, expect, it } from 'vitest';
import { canConnect, freePort, waitForPort } from '../../helpers/ports.js';
import { killAllTracked, pidExists, spawnTracked, trackedPids } from '../../helpers/processes.js';

const node = process.execPath;
/** A child that prints `ready` and then stays alive until signalled. */
const LINGER = "console.log('ready'); setInterval(() => {}, 1 << 30);";

afterEach(async () => {
  await killAllTracked();
});

describe('spawnTracked', () => {
  it('waits for output and reports the exit of a killed child', async () => {
    const p = await spawnTracked(node, ['-e', LINGER]);
    expect(p.pid).toBeGreaterThan(0);
    expect(p.running).toBe(true);
    expect(trackedPids()).toContain(p.pid);

    const m = await p.waitForOutput(/ready/, 10_000);
    expect(m[0]).toBe('ready');

    expect(p.kill('SIGTERM')).toBe(true);
    expect(await p.exited).toEqual({ code: null, signal: 'SIGTERM' });
    expect(p.running).toBe(false);
    expect(pidExists(p.pid)).toBe(false);
    expect(trackedPids()).not.toContain(p.pid);
    expect(p.kill('SIGTERM')).toBe(false);
  });

  it('captures stdout and stderr and the exit code', async () => {
    const p = await spawnTracked(node, [
      '-e',
      "console.log('out-line'); console.error('err-line'); process.exit(3)",
    ]);
    expect(await p.exited).toEqual({ code: 3, signal: null });
    await p.waitForOutput(/err-line/, 5_000);
    expect(p.output()).toContain('out-line');
  });

  it('matches a pattern split across writes', async () => {
    const p = await spawnTracked(node, [
      '-e',
      "process.stdout.write('Ready to '); setImmediate(() => { process.stdout.write('accept connections\\n'); setInterval(() => {}, 1 << 30); });",
    ]);
    await p.waitForOutput(/Ready to accept connections/, 10_000);
  });

  it('rejects waitForOutput when the child exits without a match, with the output in the message', async () => {
    const p = await spawnTracked(node, ['-e', "console.log('something else'); process.exit(2)"], {
      name: 'quitter',
    });
    await expect(p.waitForOutput(/never printed/, 10_000)).rejects.toThrow(
      /quitter \(pid \d+\) exited \(code 2.*\n.*something else/s,
    );
  });

  it('rejects waitForOutput on timeout, while the child keeps running', async () => {
    const p = await spawnTracked(node, ['-e', LINGER]);
    await p.waitForOutput(/ready/, 10_000);
    await expect(p.waitForOutput(/never printed/, 50)).rejects.toThrow(
      /did not print .* within 50 ms.*ready/s,
    );
    expect(p.running).toBe(true);
  });

  it('keeps only the last part of the output', async () => {
    const p = await spawnTracked(node, ['-e', "process.stdout.write('x'.repeat(5000) + 'END')"], {
      outputLimit: 1024,
    });
    await p.exited;
    await p.waitForOutput(/END/, 5_000);
    expect(p.output().length).toBeLessThanOrEqual(1024);
    expect(p.output().endsWith('END')).toBe(true);
  });

  it('rejects with the errno code when the command does not exist', async () => {
    await expect(spawnTracked('/nonexistent/command-xyz', [])).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('terminate() escalates to SIGKILL when SIGTERM is ignored', async () => {
    const p = await spawnTracked(node, ['-e', `process.on('SIGTERM', () => {}); ${LINGER}`]);
    await p.waitForOutput(/ready/, 10_000);
    expect(await p.terminate(200)).toEqual({ code: null, signal: 'SIGKILL' });
    expect(pidExists(p.pid)).toBe(false);
  });
});

describe('killAllTracked', () => {
  it('ends every still-running tracked child by PID', async () => {
    const a = await spawnTracked(node, ['-e', LINGER]);
    const b = await spawnTracked(node, ['-e', LINGER]);
    const done = await spawnTracked(node, ['-e', 'process.exit(0)']);
    await Promise.all([a.waitForOutput(/ready/, 10_000), b.waitForOutput(/ready/, 10_000), done.exited]);
    expect(trackedPids().sort()).toEqual([a.pid, b.pid].sort());

    await killAllTracked();

    expect(a.running).toBe(false);
    expect(b.running).toBe(false);
    expect(pidExists(a.pid)).toBe(false);
    expect(pidExists(b.pid)).toBe(false);
    expect(trackedPids()).toEqual([]);
  });
});

describe('ports', () => {
  it('freePort returns a bindable port and waitForPort sees a listener come up', async () => {
    const port = await freePort();
    expect(await canConnect(port)).toBe(false);
    const server = await spawnTracked(node, [
      '-e',
      `require('node:net').createServer((s) => s.end()).listen(${port}, '127.0.0.1', () => console.log('listening'))`,
    ]);
    await waitForPort(port, '127.0.0.1', 10_000);
    expect(await canConnect(port)).toBe(true);
    await server.terminate();
    expect(await canConnect(port)).toBe(false);
  });

  it('waitForPort gives up at its deadline', async () => {
    const port = await freePort();
    await expect(waitForPort(port, '127.0.0.1', 150)).rejects.toThrow(/within 150 ms/);
  });
});
