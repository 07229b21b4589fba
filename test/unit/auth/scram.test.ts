import { describe, expect, it } from 'vitest';
import { parsePasswordFile } from '../../../src/auth/password-file.js';
import {
  clientFinal,
  deriveScramCredentials,
  formatScram,
  parseScram,
  type ScramCredentials,
  ScramServer,
} from '../../../src/auth/scram.js';

// RFC 7677 section 3: user "user", password "pencil".
const RFC = {
  clientFirst: 'n,,n=user,r=rOprNGfwEbeRWgbNEkqO',
  serverNonce: '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0',
  serverFirst: 'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
  clientFinal:
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  serverFinal: 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=',
};
const rfcCreds = (): ScramCredentials =>
  deriveScramCredentials('pencil', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));

describe('SCRAM-SHA-256', () => {
  it('computes the RFC 7677 client proof and server signature', () => {
    const c = clientFinal('pencil', 'n=user,r=rOprNGfwEbeRWgbNEkqO', RFC.serverFirst);
    expect(c.clientFinal).toBe(RFC.clientFinal);
    expect(`v=${c.serverSignature}`).toBe(RFC.serverFinal);
  });

  it('runs the RFC 7677 exchange as the server', () => {
    const server = new ScramServer((u) => (u === 'user' ? rfcCreds() : undefined), RFC.serverNonce);
    expect(server.start(RFC.clientFirst)).toEqual({ ok: true, message: RFC.serverFirst, username: 'user' });
    expect(server.finish(RFC.clientFinal)).toEqual({ ok: true, message: RFC.serverFinal, username: 'user' });
  });

  it('refuses a wrong proof (wrong password)', () => {
    const server = new ScramServer(() => rfcCreds(), RFC.serverNonce);
    const first = server.start(RFC.clientFirst);
    expect(first.ok).toBe(true);
    const bad = clientFinal('wrong', 'n=user,r=rOprNGfwEbeRWgbNEkqO', RFC.serverFirst);
    expect(server.finish(bad.clientFinal)).toMatchObject({ ok: false, reason: 'wrong proof' });
  });

  it('refuses a client-final with another nonce', () => {
    const server = new ScramServer(() => rfcCreds(), RFC.serverNonce);
    server.start(RFC.clientFirst);
    const tampered = RFC.clientFinal.replace('hNlF$k0', 'hNlF$k1');
    expect(server.finish(tampered)).toMatchObject({ ok: false, reason: 'nonce mismatch' });
  });

  it('appends a random server nonce to the client nonce', () => {
    const a = new ScramServer(() => rfcCreds()).start(RFC.clientFirst);
    const b = new ScramServer(() => rfcCreds()).start(RFC.clientFirst);
    expect(a.ok && b.ok).toBe(true);
    if (!a.ok || !b.ok) return;
    expect(a.message).toMatch(/^r=rOprNGfwEbeRWgbNEkqO[^,]{16,},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096$/);
    expect(a.message).not.toBe(b.message);
  });

  it('answers an unknown user like a known one and fails at the proof', () => {
    const server = new ScramServer(() => undefined, RFC.serverNonce);
    const first = server.start('n,,n=nobody,r=abc');
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    // The stand-in salt is stable for a name, so probing twice does not reveal the user is unknown.
    expect(new ScramServer(() => undefined, RFC.serverNonce).start('n,,n=nobody,r=abc')).toEqual(first);
    const c = clientFinal('pencil', 'n=nobody,r=abc', first.message);
    expect(server.finish(c.clientFinal).ok).toBe(false);
  });

  it.each([
    ['p=tls-unique,,n=user,r=abc', 'channel binding is not supported'],
    ['n,,r=abc', 'malformed client-first-message'],
    ['n,,n=user,r=abc,m=ext', 'unsupported mandatory extension'],
    ['n,a=other,n=user,r=abc', 'authorization identity differs from the user'],
    ['garbage', 'malformed client-first-message'],
  ])('refuses client-first %s', (message, reason) => {
    expect(new ScramServer(() => rfcCreds()).start(message)).toMatchObject({ ok: false, reason });
  });

  it('refuses steps out of order', () => {
    const server = new ScramServer(() => rfcCreds());
    expect(server.finish(RFC.clientFinal).ok).toBe(false);
  });

  it('formats and parses stored credentials; the password file keeps them on the user line', () => {
    const creds = deriveScramCredentials('pencil');
    const field = formatScram(creds);
    expect(parseScram(field)).toEqual(creds);
    expect(parseScram('$scram-sha-256$1$AAAAAAAAAAA=$AA==$AA==')).toMatch(/iterations/);
    const users = parsePasswordFile(
      `alice:$scrypt$16384$8$1$c2FsdHNhbHRzYWx0$${Buffer.alloc(32).toString('base64')}:${field}\n` +
        `bob:$scrypt$16384$8$1$c2FsdHNhbHRzYWx0$${Buffer.alloc(32).toString('base64')}\n`,
    );
    expect(users.get('alice')?.scram).toEqual(creds);
    expect(users.get('bob')?.scram).toBeUndefined();
  });
});
