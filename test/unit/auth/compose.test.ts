/**
 * The config-built authenticator chain and authorizer, driven directly (no sockets): password file,
 * anonymous handling, backoff on a FakeClock, hooks from code, failure logs without secrets, reloads.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import { createAuth } from '../../../src/auth/compose.js';
import { hashPassword } from '../../../src/auth/password-file.js';
import type { AuthDecision, ConnectInfo } from '../../../src/auth/types.js';
import { ConfigError } from '../../../src/config/errors.js';
import { validateConfig } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/observability/logger.js';
import { ReasonCode } from '../../../src/protocol/index.js';
import { FakeClock } from '../../helpers/fake-clock.js';

const dir = mkdtempSync(path.join(tmpdir(), 'shoal-auth-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function file(content: string): string {
  const f = path.join(dir, `f${n++}`);
  writeFileSync(f, content);
  return f;
}
const FAST = { N: 16, r: 1, p: 1 };

function logs() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (s: string) => lines.push(JSON.parse(s)) });
  return { logger, lines, events: (e: string) => lines.filter((l) => l.event === e) };
}

function auth(section: Record<string, unknown>, extra: Partial<Parameters<typeof createAuth>[1]> = {}) {
  const clock = new FakeClock();
  const log = logs();
  const config = validateConfig({ auth: { watchFiles: false, ...section } }).auth;
  const system = createAuth(config, { clock, logger: log.logger, ...extra });
  return { ...system, clock, log };
}

const info = (over: Partial<ConnectInfo> = {}): ConnectInfo => ({
  clientId: 'c1',
  remoteAddress: '192.0.2.1',
  transport: 'tcp',
  ...over,
});
const pw = (s: string) => Buffer.from(s);
const code = async (d: AuthDecision | Promise<AuthDecision>) => {
  const v = await d;
  return typeof v === 'number' ? v : v.reasonCode;
};

describe('authentication chain', () => {
  it('no config: everyone is let in, synchronously (no promise on the fast path)', () => {
    const a = auth({});
    expect(a.hooks.authenticate(info())).toBe(0);
    expect(a.hooks.authenticate(info({ username: 'u', password: pw('p') }))).toBe(0);
    expect(a.hooks.authorizePublish('c1', 'u', 't')).toBe(true);
    expect(a.hooks.authorizeSubscribe('c1', 'u', '#')).toBe(true);
  });

  it('password file: right password 0, wrong 0x86, unknown user 0x86, anonymous allowed unless required', async () => {
    const passwordFile = file(`alice:${await hashPassword('wonderland', FAST)}\n`);
    const a = auth({ passwordFile });
    expect(await code(a.hooks.authenticate(info({ username: 'alice', password: pw('wonderland') })))).toBe(0);
    expect(await code(a.hooks.authenticate(info({ username: 'alice', password: pw('nope') })))).toBe(0x86);
    expect(await code(a.hooks.authenticate(info({ username: 'alice' })))).toBe(0x86);
    expect(await code(a.hooks.authenticate(info({ username: 'mallory', password: pw('x') })))).toBe(0x86);
    expect(a.hooks.authenticate(info())).toBe(0);
    const r = auth({ passwordFile, required: true });
    expect(r.hooks.authenticate(info())).toBe(ReasonCode.NotAuthorized);
  });

  it('logs a failed login with its reason and the password length, never the password', async () => {
    const passwordFile = file(`alice:${await hashPassword('wonderland', FAST)}\n`);
    const a = auth({ passwordFile });
    await a.hooks.authenticate(info({ username: 'alice', password: pw('hunter2-guess') }));
    await a.hooks.authenticate(info({ username: 'mallory', password: pw('x') }));
    const failed = a.log.events('auth.login_failed');
    expect(failed.map((l) => l.reason)).toEqual(['bad_password', 'unknown_user']);
    expect(failed[0]).toMatchObject({
      username: 'alice',
      passwordLength: 13,
      remote: '192.0.2.1',
      reasonCode: 0x86,
    });
    expect(JSON.stringify(a.log.lines)).not.toContain('hunter2-guess');
  });

  it('a JWT-shaped password is verified as a token; its claim names the client', async () => {
    const secret = 'jwt-secret-of-at-least-thirty-two-bytes';
    const a = auth({ jwt: { secret } });
    const now = a.clock.now();
    const token = await new SignJWT({ sub: 'tok-user' })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(now / 1000) + 60)
      .sign(Buffer.from(secret));
    expect(await a.hooks.authenticate(info({ password: pw(token) }))).toEqual({
      reasonCode: 0,
      username: 'tok-user',
      permissions: undefined,
    });
    expect(await code(a.hooks.authenticate(info({ username: 'u', password: pw('not-a-token') })))).toBe(0x86);
    expect(a.log.events('auth.login_failed').at(-1)?.reason).toBe('no_matching_source');
  });

  it('a password-file user is checked against the file even when a JWT source exists', async () => {
    const passwordFile = file(`alice:${await hashPassword('pw', FAST)}\n`);
    const a = auth({ passwordFile, jwt: { secret: 'jwt-secret-of-at-least-thirty-two-bytes' } });
    expect(await code(a.hooks.authenticate(info({ username: 'alice', password: pw('pw') })))).toBe(0);
  });

  it('failure backoff: after a failure the address is refused unchecked (0x9F) until the pause is over', async () => {
    const passwordFile = file(`alice:${await hashPassword('pw', FAST)}\n`);
    const a = auth({
      passwordFile,
      failureBackoff: { enabled: true, initialDelayMs: 1000, maxDelayMs: 8000 },
    });
    const bad = info({ username: 'alice', password: pw('wrong') });
    const good = info({ username: 'alice', password: pw('pw') });
    expect(await code(a.hooks.authenticate(bad))).toBe(0x86);
    // Even the right password is refused during the pause: it is not checked at all.
    expect(a.hooks.authenticate(good)).toBe(ReasonCode.ConnectionRateExceeded);
    expect(await code(a.hooks.authenticate(info({ ...good, remoteAddress: '192.0.2.9' })))).toBe(0);
    a.clock.advance(1000);
    expect(await code(a.hooks.authenticate(bad))).toBe(0x86);
    a.clock.advance(1999);
    expect(a.hooks.authenticate(good)).toBe(ReasonCode.ConnectionRateExceeded);
    a.clock.advance(1);
    expect(await code(a.hooks.authenticate(good))).toBe(0);
    // The success cleared the address.
    expect(await code(a.hooks.authenticate(bad))).toBe(0x86);
    a.clock.advance(1000);
    expect(await code(a.hooks.authenticate(good))).toBe(0);
    expect(a.log.events('auth.login_failed').some((l) => l.reason === 'backoff')).toBe(true);
  });

  it('hooks from code replace the config-built ones; backoff and logs still apply', async () => {
    const seen: string[] = [];
    const a = auth(
      { failureBackoff: { enabled: true } },
      {
        overrides: {
          authenticate: (i) => (i.username === 'ok' ? 0 : 0x87),
          authorizePublish: (_c, _u, topic) => {
            seen.push(topic);
            return topic !== 'no';
          },
        },
      },
    );
    expect(a.hooks.authenticate(info({ username: 'ok' }))).toBe(0);
    expect(a.hooks.authenticate(info({ username: 'x' }))).toBe(0x87);
    expect(a.hooks.authenticate(info({ username: 'ok' }))).toBe(ReasonCode.ConnectionRateExceeded);
    expect(a.hooks.authorizePublish('c', 'u', 'no')).toBe(false);
    expect(seen).toEqual(['no']);
    expect(a.log.events('auth.login_failed')[0]).toMatchObject({ reason: 'hook_refused', reasonCode: 0x87 });
  });

  it('an async hook result with a username is passed on', async () => {
    const a = auth({}, { overrides: { authenticate: async () => ({ reasonCode: 0, username: 'named' }) } });
    expect(await a.hooks.authenticate(info())).toEqual({
      reasonCode: 0,
      username: 'named',
      permissions: undefined,
    });
  });
});

describe('authorization', () => {
  it('ACL file and credential permissions must both allow', () => {
    const aclFile = file(`defaults: [{ allow: both, topic: 'a/#' }]`);
    const a = auth({ aclFile });
    expect(a.hooks.authorizePublish('c', 'u', 'a/1')).toBe(true);
    expect(a.hooks.authorizePublish('c', 'u', 'b/1')).toBe(false);
    const only = { publish: (t: string) => t === 'a/2', subscribe: (f: string) => f === 'a/x' };
    expect(a.hooks.authorizePublish('c', 'u', 'a/1', only)).toBe(false);
    expect(a.hooks.authorizePublish('c', 'u', 'a/2', only)).toBe(true);
    expect(a.hooks.authorizeSubscribe('c', 'u', '$share/g/a/x', only)).toBe(true);
    expect(a.hooks.authorizeSubscribe('c', 'u', 'a/y', only)).toBe(false);
    expect(a.hooks.v3DeniedPublish).toBe('drop');
  });
});

describe('files at start and on reload', () => {
  it('a missing or malformed file at start is a ConfigError naming the key', () => {
    expect(() => auth({ passwordFile: path.join(dir, 'missing') })).toThrow(ConfigError);
    expect(() => auth({ passwordFile: path.join(dir, 'missing') })).toThrow(
      /^auth\.passwordFile: cannot read .*ENOENT/,
    );
    expect(() => auth({ passwordFile: file('alice:plain\n') })).toThrow(
      /^auth\.passwordFile: .* line 1: not a \$scrypt\$ hash/,
    );
    expect(() => auth({ aclFile: file('defaults: 3') })).toThrow(
      /^auth\.aclFile: .*defaults: must be a list/,
    );
    expect(() => auth({ jwt: { publicKeyFile: file('nope') } })).toThrow(
      /^auth\.jwt\.publicKeyFile: .* is not a PEM/,
    );
    expect(() => auth({ jwt: { jwksFile: file('{}') } })).toThrow(
      /^auth\.jwt\.jwksFile: .* is not a JSON Web Key Set/,
    );
  });

  it('auth.required needs a way to authenticate', () => {
    expect(() => auth({ required: true })).toThrow(/^auth\.required: needs a way to authenticate/);
    expect(() => auth({ required: true }, { overrides: { authenticate: () => 0 } })).not.toThrow();
  });

  it('reload swaps in the new file; a broken file keeps the previous content and is logged', async () => {
    const passwordFile = file(`alice:${await hashPassword('one', FAST)}\n`);
    const a = auth({ passwordFile });
    writeFileSync(passwordFile, `alice:${await hashPassword('two', FAST)}\n`);
    a.reload();
    expect(await code(a.hooks.authenticate(info({ username: 'alice', password: pw('two') })))).toBe(0);
    expect(a.log.events('auth.reloaded')[0]).toMatchObject({ key: 'auth.passwordFile', summary: '1 users' });
    writeFileSync(passwordFile, 'garbage\n');
    a.reload();
    expect(a.log.events('auth.reload_failed')[0]).toMatchObject({ key: 'auth.passwordFile' });
    expect(await code(a.hooks.authenticate(info({ username: 'alice', password: pw('two') })))).toBe(0);
  });
});

describe('auth config relations', () => {
  it('tlsIdentity needs client certificates requested', () => {
    expect(() => validateConfig({ auth: { tlsIdentity: 'cn' } })).toThrow(
      /auth\.tlsIdentity: needs tls\.requestClientCert: true/,
    );
    expect(
      validateConfig({ auth: { tlsIdentity: 'san' }, tls: { requestClientCert: true } }).auth.tlsIdentity,
    ).toBe('san');
  });

  it('checks algorithms, URL and backoff bounds; never echoes the JWT secret', () => {
    expect(() => validateConfig({ auth: { jwt: { algorithms: 'RS256' } } })).toThrow(
      /auth\.jwt\.algorithms: needs/,
    );
    expect(() => validateConfig({ auth: { jwt: { secret: 's', algorithms: 'none' } } })).toThrow(
      /auth\.jwt\.algorithms: must be a comma-separated list/,
    );
    expect(
      validateConfig({ auth: { jwt: { secret: 's', algorithms: 'HS256, HS512' } } }).auth.jwt.algorithms,
    ).toBe('HS256, HS512');
    expect(() => validateConfig({ auth: { http: { url: 'ftp://x' } } })).toThrow(
      /auth\.http\.url: must be an http/,
    );
    expect(() =>
      validateConfig({ auth: { failureBackoff: { initialDelayMs: 5000, maxDelayMs: 1000 } } }),
    ).toThrow(/auth\.failureBackoff\.maxDelayMs: must be at least/);
    let message = '';
    try {
      validateConfig({ auth: { jwt: { secret: 'top-secret-value', extra: 1 } } });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('auth.jwt.extra: unknown key');
    expect(message).not.toContain('top-secret-value');
  });
});
