import { describe, expect, it } from 'vitest';
import { replaceUserLine } from '../../../src/auth/passwd-command.js';
import {
  checkUsername,
  formatHash,
  hashPassword,
  PasswordFileError,
  PasswordStore,
  parseHash,
  parsePasswordFile,
  verifyPassword,
} from '../../../src/auth/password-file.js';

/** Cheap parameters: the format and the checks are the same, the hashing takes microseconds. */
const FAST = { N: 16, r: 1, p: 1 };

function hashOf(text: string) {
  const h = parseHash(text);
  if (typeof h === 'string') throw new Error(h);
  return h;
}

describe('password hashes', () => {
  it('writes $scrypt$N$r$p$salt$hash with a fresh salt each time', async () => {
    const a = await hashPassword('s3cret');
    const b = await hashPassword('s3cret');
    expect(a).toMatch(/^\$scrypt\$16384\$8\$1\$[A-Za-z0-9+/]+=*\$[A-Za-z0-9+/]+=*$/);
    expect(a).not.toBe(b);
    expect(hashOf(a).salt).toHaveLength(16);
    expect(hashOf(a).hash).toHaveLength(32);
  });

  it('verifies the right password and refuses others', async () => {
    const h = hashOf(await hashPassword('correct horse', FAST));
    expect(await verifyPassword('correct horse', h)).toBe(true);
    expect(await verifyPassword(Buffer.from('correct horse'), h)).toBe(true);
    expect(await verifyPassword('correct hors', h)).toBe(false);
    expect(await verifyPassword('', h)).toBe(false);
  });

  it('round-trips through formatHash', async () => {
    const text = await hashPassword('x', FAST);
    expect(formatHash(hashOf(text))).toBe(text);
  });

  it.each([
    ['$argon2$...', /not a \$scrypt\$ hash/],
    ['$scrypt$16384$8$1$c2FsdHNhbHQ=', /has the form/],
    ['$scrypt$1000$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', /power of two/],
    [`$scrypt$${2 ** 21}$8$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==`, /power of two up to/],
    ['$scrypt$16384$0$1$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', /r must be/],
    ['$scrypt$16384$8$99$c2FsdHNhbHQ=$aGFzaGhhc2hoYXNoaGFzaA==', /p must be/],
    ['$scrypt$16384$8$1$not base64!$aGFzaGhhc2hoYXNoaGFzaA==', /base64/],
    ['$scrypt$16384$8$1$c2FsdA==$aGFzaGhhc2hoYXNoaGFzaA==', /salt must be at least/],
    ['$scrypt$16384$8$1$c2FsdHNhbHQ=$aGFzaA==', /hash must be/],
  ])('refuses %s', (text, problem) => {
    expect(parseHash(text)).toMatch(problem);
  });
});

describe('password file', () => {
  it('reads users, skipping comments and blank lines (CRLF too)', async () => {
    const a = await hashPassword('a', FAST);
    const b = await hashPassword('b', FAST);
    const users = parsePasswordFile(`# users\r\n\r\nalice:${a}\r\n  bob:${b}  \n`);
    expect([...users.keys()]).toEqual(['alice', 'bob']);
    expect(await verifyPassword('b', users.get('bob')!)).toBe(true);
  });

  it('a user name may hold anything but ":" and line breaks', async () => {
    const h = await hashPassword('pw', FAST);
    const users = parsePasswordFile(`dev/ice #1+x:${h}\n`);
    expect(users.has('dev/ice #1+x')).toBe(true);
    expect(checkUsername('a:b')).toMatch(/":"/);
    expect(checkUsername('')).toMatch(/empty/);
    expect(checkUsername('#x')).toMatch(/"#"/);
    expect(checkUsername('ok name')).toBeUndefined();
  });

  it.each([
    ['no colon', 'alice\n', 1, /expected user:/],
    ['empty user', ':$scrypt$...\n', 1, /expected user:/],
    ['bad hash on line 3', '# c\n\nalice:plain\n', 3, /not a \$scrypt\$ hash/],
  ])('names the bad line: %s', (_name, text, line, problem) => {
    let err: unknown;
    try {
      parsePasswordFile(text);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PasswordFileError);
    expect((err as PasswordFileError).line).toBe(line);
    expect((err as Error).message).toMatch(problem);
  });

  it('refuses a user listed twice', async () => {
    const h = await hashPassword('pw', FAST);
    expect(() => parsePasswordFile(`a:${h}\nb:${h}\na:${h}\n`)).toThrow(/line 3: the user is listed twice/);
  });

  it('a store tells a good password, a bad one and an unknown user apart, and swaps users at once', async () => {
    const store = new PasswordStore(parsePasswordFile(`alice:${await hashPassword('pw', FAST)}\n`));
    expect(await store.check('alice', 'pw')).toBe('ok');
    expect(await store.check('alice', 'nope')).toBe('bad_password');
    expect(await store.check('mallory', 'pw')).toBe('unknown_user');
    store.replace(parsePasswordFile(`mallory:${await hashPassword('pw2', FAST)}\n`));
    expect(store.size).toBe(1);
    expect(await store.check('alice', 'pw')).toBe('unknown_user');
    expect(await store.check('mallory', 'pw2')).toBe('ok');
  });
});

describe('replaceUserLine (shoal passwd)', () => {
  it('appends a new user, replaces an existing one in place, removes one, keeps the rest', () => {
    const text = '# comment\nalice:H1\nbob:H2\n';
    expect(replaceUserLine(text, 'carol', 'carol:H3')).toBe('# comment\nalice:H1\nbob:H2\ncarol:H3\n');
    expect(replaceUserLine(text, 'alice', 'alice:H9')).toBe('# comment\nalice:H9\nbob:H2\n');
    expect(replaceUserLine(text, 'alice', undefined)).toBe('# comment\nbob:H2\n');
    expect(replaceUserLine('', 'a', 'a:H')).toBe('a:H\n');
    expect(replaceUserLine('a:H\n', 'a', undefined)).toBe('');
    // "al" is not a prefix match for "alice".
    expect(replaceUserLine(text, 'al', 'al:H4')).toBe('# comment\nalice:H1\nbob:H2\nal:H4\n');
  });
});
