/**
 * `shoal passwd` in-process: the non-terminal path (first line of stdin) and the terminal path (raw
 * mode, two prompts, nothing echoed), driven through the CLI's main().
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import type { PasswdInput } from '../../../src/auth/passwd-command.js';
import { parseHash, parsePasswordFile, verifyPassword } from '../../../src/auth/password-file.js';
import { main } from '../../../src/cli.js';

const dir = mkdtempSync(path.join(tmpdir(), 'shoal-passwd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(dir, `users${n++}.passwd`);

function io() {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      stdout: (t: string) => {
        out.stdout += t;
      },
      stderr: (t: string) => {
        out.stderr += t;
      },
    },
  };
}

async function passwd(args: string[], input: string | PasswdInput) {
  const { out, io: output } = io();
  const stdin = typeof input === 'string' ? Readable.from([input]) : input;
  const code = await main(['passwd', ...args], {}, output, stdin);
  return { code, ...out };
}

async function check(file: string, user: string, password: string) {
  const h = parsePasswordFile(readFileSync(file, 'utf8')).get(user);
  return h !== undefined && verifyPassword(password, h);
}

/** A terminal: raw mode is recorded; what the user types is pushed in. */
class FakeTty extends PassThrough implements PasswdInput {
  isTTY = true;
  rawModes: boolean[] = [];
  setRawMode(mode: boolean) {
    this.rawModes.push(mode);
    return this;
  }
}

describe('shoal passwd', () => {
  it('creates the file (mode 0600), then updates and deletes users, keeping the other lines', async () => {
    const file = fresh();
    let r = await passwd([file, 'alice'], 'first-pw\n');
    expect(r).toMatchObject({ code: 0, stdout: `created user alice in ${file}\n`, stderr: '' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(await check(file, 'alice', 'first-pw')).toBe(true);

    r = await passwd([file, 'bob'], 'bob-pw');
    expect(r.code).toBe(0);
    r = await passwd([file, 'alice'], 'second-pw\r\n');
    expect(r.stdout).toBe(`updated user alice in ${file}\n`);
    expect(await check(file, 'alice', 'second-pw')).toBe(true);
    expect(await check(file, 'bob', 'bob-pw')).toBe(true);
    expect(readFileSync(file, 'utf8').split('\n')[0]).toMatch(/^alice:\$scrypt\$/);

    r = await passwd([file, 'alice', '--delete'], '');
    expect(r).toMatchObject({ code: 0, stdout: `deleted user alice from ${file}\n` });
    expect([...parsePasswordFile(readFileSync(file, 'utf8')).keys()]).toEqual(['bob']);
    r = await passwd([file, 'alice', '-D'], '');
    expect(r).toMatchObject({ code: 1, stderr: `shoal passwd: no user alice in ${file}\n` });
  });

  it('never prints the password', async () => {
    const file = fresh();
    const r = await passwd([file, 'carol'], 'Sup3r-Secret!\n');
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).not.toContain('Sup3r-Secret!');
    expect(readFileSync(file, 'utf8')).not.toContain('Sup3r-Secret!');
  });

  it('on a terminal asks twice in raw mode, echoing nothing, backspace editing', async () => {
    const file = fresh();
    const tty = new FakeTty();
    const running = passwd([file, 'dave'], tty);
    tty.write('tyop\u007f\u007fpo\r');
    tty.write('typo\n');
    const r = await running;
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('Password: \nRepeat password: \n');
    expect(tty.rawModes).toEqual([true, false]);
    expect(await check(file, 'dave', 'typo')).toBe(true);
  });

  it('on a terminal refuses two different passwords and Ctrl-C', async () => {
    const tty = new FakeTty();
    const mismatch = passwd([fresh(), 'erin'], tty);
    tty.write('one\rtwo\r');
    expect(await mismatch).toMatchObject({ code: 1 });
    const tty2 = new FakeTty();
    const file = fresh();
    const interrupted = passwd([file, 'erin'], tty2);
    tty2.write('abc\u0003');
    const r = await interrupted;
    expect(r).toMatchObject({ code: 1 });
    expect(r.stderr).toContain('interrupted');
    expect(() => statSync(file)).toThrow();
  });

  it('refuses usage errors, bad user names, empty passwords and malformed files without changing them', async () => {
    expect((await passwd([fresh()], 'x\n')).code).toBe(2);
    expect((await passwd([fresh(), 'a', 'b'], 'x\n')).code).toBe(2);
    expect((await passwd([fresh(), 'a', '--bogus'], 'x\n')).code).toBe(2);
    expect(await passwd([fresh(), 'a:b'], 'x\n')).toMatchObject({ code: 1, stderr: /":"/ });
    expect(await passwd([fresh(), 'a'], '\n')).toMatchObject({ code: 1, stderr: /empty/ });
    expect(await passwd([fresh(), 'a'], '')).toMatchObject({ code: 1, stderr: /no password/ });
    const broken = fresh();
    writeFileSync(broken, 'alice:plaintext\n');
    expect(await passwd([broken, 'bob'], 'x\n')).toMatchObject({ code: 1, stderr: /line 1: .*not changed/ });
    expect(readFileSync(broken, 'utf8')).toBe('alice:plaintext\n');
    const help = await passwd(['--help'], '');
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: shoal passwd FILE USER');
  });

  it('writes hashes with the default scrypt cost', async () => {
    const file = fresh();
    await passwd([file, 'frank'], 'pw\n');
    const hash = readFileSync(file, 'utf8').trim().split(':')[1];
    expect(parseHash(hash)).toMatchObject({ params: { N: 16384, r: 8, p: 1 } });
  });
});
