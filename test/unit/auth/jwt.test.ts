import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  defaultAlgorithms,
  JwtVerifier,
  looksLikeJwt,
  parseJwks,
  readPublicKey,
} from '../../../src/auth/jwt.js';

const NOW = Date.UTC(2030, 0, 1);
const SECRET = 'a-shared-secret-of-at-least-32-bytes!!';
const claims = {
  usernameClaim: 'sub',
  clientIdClaim: 'client_id',
  aclClaim: 'acl',
  requireExpiry: true,
  now: () => NOW,
};
const seconds = (ms: number) => Math.floor(ms / 1000);

function hs256(payload: Record<string, unknown>, secret = SECRET, exp: number | null = NOW + 60_000) {
  const jwt = new SignJWT(payload).setProtectedHeader({ alg: 'HS256' }).setIssuedAt(seconds(NOW));
  if (exp !== null) jwt.setExpirationTime(seconds(exp));
  return jwt.sign(Buffer.from(secret));
}

describe('JWT as password', () => {
  const hs = new JwtVerifier({ secret: SECRET, ...claims });

  it('HS256: a valid token names the user from its claim when CONNECT has none', async () => {
    const token = await hs256({ sub: 'alice' });
    expect(looksLikeJwt(Buffer.from(token))).toBe(true);
    expect(await hs.verify(token, { clientId: 'c1' })).toEqual({ ok: true, username: 'alice' });
    expect(await hs.verify(token, { clientId: 'c1', username: 'alice' })).toEqual({
      ok: true,
      username: 'alice',
    });
  });

  it('refuses a token signed with another secret', async () => {
    const token = await hs256({ sub: 'alice' }, 'another-secret-of-at-least-32-bytes!!!');
    expect(await hs.verify(token, { clientId: 'c1' })).toEqual({
      ok: false,
      reason: 'token_signature_invalid',
    });
  });

  it('refuses an expired token, one not yet valid, and (by default) one without exp', async () => {
    const expired = await hs256({ sub: 'alice' }, SECRET, NOW - 1000);
    expect(await hs.verify(expired, { clientId: 'c1' })).toEqual({ ok: false, reason: 'token_expired' });
    const early = await new SignJWT({ sub: 'a' })
      .setProtectedHeader({ alg: 'HS256' })
      .setNotBefore(seconds(NOW + 60_000))
      .setExpirationTime(seconds(NOW + 120_000))
      .sign(Buffer.from(SECRET));
    expect(await hs.verify(early, { clientId: 'c1' })).toEqual({ ok: false, reason: 'token_claim_invalid' });
    const forever = await hs256({ sub: 'alice' }, SECRET, null);
    expect(await hs.verify(forever, { clientId: 'c1' })).toEqual({
      ok: false,
      reason: 'token_claim_invalid',
    });
    const lax = new JwtVerifier({ secret: SECRET, ...claims, requireExpiry: false });
    expect(await lax.verify(forever, { clientId: 'c1' })).toMatchObject({ ok: true });
  });

  it('the clock is the broker clock: a token is valid until its exp', async () => {
    let now = NOW;
    const v = new JwtVerifier({ secret: SECRET, ...claims, now: () => now });
    const token = await hs256({ sub: 'a' }, SECRET, NOW + 10_000);
    expect(await v.verify(token, { clientId: 'c' })).toMatchObject({ ok: true });
    now = NOW + 10_000;
    expect(await v.verify(token, { clientId: 'c' })).toEqual({ ok: false, reason: 'token_expired' });
  });

  it('checks the user name and client id claims against CONNECT', async () => {
    const token = await hs256({ sub: 'alice', client_id: 'c1' });
    expect(await hs.verify(token, { clientId: 'c1', username: 'bob' })).toEqual({
      ok: false,
      reason: 'token_username_mismatch',
    });
    expect(await hs.verify(token, { clientId: 'c2', username: 'alice' })).toEqual({
      ok: false,
      reason: 'token_client_id_mismatch',
    });
    const custom = new JwtVerifier({ secret: SECRET, ...claims, usernameClaim: 'preferred_username' });
    expect(await custom.verify(await hs256({ preferred_username: 'carol' }), { clientId: 'x' })).toEqual({
      ok: true,
      username: 'carol',
    });
  });

  it('an ACL claim becomes the connection permissions (%u from the claim); a bad one refuses', async () => {
    const token = await hs256({
      sub: 'dev7',
      acl: [
        { allow: 'publish', topic: 'devices/%u/telemetry' },
        { allow: 'subscribe', topic: 'devices/%u/commands/#' },
      ],
    });
    const r = await hs.verify(token, { clientId: 'c' });
    if (!r.ok || r.permissions === undefined) throw new Error('expected permissions');
    expect(r.permissions.publish('devices/dev7/telemetry')).toBe(true);
    expect(r.permissions.publish('devices/dev8/telemetry')).toBe(false);
    expect(r.permissions.subscribe('devices/dev7/commands/#')).toBe(true);
    expect(r.permissions.subscribe('devices/#')).toBe(false);
    const bad = await hs256({ sub: 'x', acl: [{ allow: 'everything', topic: '#' }] });
    expect(await hs.verify(bad, { clientId: 'c' })).toEqual({ ok: false, reason: 'token_acl_invalid' });
  });

  it('RS256 with a PEM public key; an HS256 token is not accepted by a key-only verifier', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = publicKey.export({ type: 'spki', format: 'pem' });
    const v = new JwtVerifier({ publicKey: readPublicKey(pem), ...claims });
    const token = await new SignJWT({ sub: 'rsa-user' })
      .setProtectedHeader({ alg: 'RS256' })
      .setExpirationTime(seconds(NOW + 60_000))
      .sign(privateKey);
    expect(await v.verify(token, { clientId: 'c' })).toEqual({ ok: true, username: 'rsa-user' });
    expect(await v.verify(await hs256({ sub: 'x' }), { clientId: 'c' })).toEqual({
      ok: false,
      reason: 'token_algorithm_not_allowed',
    });
  });

  it('ES256 from a JWKS (kid picks the key); an unknown kid is refused', async () => {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    const jwks = parseJwks(JSON.stringify({ keys: [jwk] }));
    const v = new JwtVerifier({ jwks, ...claims });
    const sign = (kid: string) =>
      new SignJWT({ sub: 'ec-user' })
        .setProtectedHeader({ alg: 'ES256', kid })
        .setExpirationTime(seconds(NOW + 60_000))
        .sign(privateKey);
    expect(await v.verify(await sign('k1'), { clientId: 'c' })).toEqual({ ok: true, username: 'ec-user' });
    expect(await v.verify(await sign('k2'), { clientId: 'c' })).toEqual({
      ok: false,
      reason: 'token_key_unknown',
    });
  });

  it('setKeys swaps keys (a reload of the key file)', async () => {
    const a = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const b = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const v = new JwtVerifier({ publicKey: a.publicKey, ...claims });
    const token = await new SignJWT({ sub: 'u' })
      .setProtectedHeader({ alg: 'ES256' })
      .setExpirationTime(seconds(NOW + 60_000))
      .sign(b.privateKey);
    expect(await v.verify(token, { clientId: 'c' })).toMatchObject({ ok: false });
    v.setKeys({ publicKey: b.publicKey });
    expect(await v.verify(token, { clientId: 'c' })).toMatchObject({ ok: true });
  });

  it('only JWT-shaped passwords are treated as tokens', () => {
    expect(looksLikeJwt(undefined)).toBe(false);
    expect(looksLikeJwt(Buffer.from('hunter2'))).toBe(false);
    expect(looksLikeJwt(Buffer.from('eyJhbGciOiJIUzI1NiJ9.e30'))).toBe(false);
    expect(looksLikeJwt(Buffer.from('eyJhbGciOiJIUzI1NiJ9.e30.c2lnbmF0dXJl'))).toBe(true);
  });

  it('default algorithms follow the keys', () => {
    expect(defaultAlgorithms({ secret: 's' })).toEqual(['HS256']);
    expect(defaultAlgorithms({ jwks: { keys: [] } })).toEqual(['RS256', 'ES256']);
  });

  it('parseJwks refuses what is not a key set', () => {
    expect(() => parseJwks('{"kty":"EC"}')).toThrow(/not a JSON Web Key Set/);
    expect(() => parseJwks('nope')).toThrow();
  });
});
