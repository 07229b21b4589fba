/**
 * SCRAM-SHA-256 (RFC 5802, RFC 7677) for MQTT 5 enhanced authentication: the stored credentials
 * (`$scram-sha-256$iterations$salt$storedKey$serverKey`, base64) kept in the password file next to
 * the scrypt hash, and the server side of the exchange as a pure state machine: client-first in,
 * server-first out; client-final in, server-final out (or a failure). No packets, no I/O.
 * Channel binding is not offered (gs2 header `n,,` or `y,,`); user names are taken as sent (no
 * SASLprep beyond the `=2C` / `=3D` escapes).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';

export const SCRAM_SHA_256 = 'SCRAM-SHA-256';
/** RFC 7677 asks for at least 4096. */
export const DEFAULT_SCRAM_ITERATIONS = 4096;
const MIN_ITERATIONS = 4096;
const MAX_ITERATIONS = 1_000_000;
const PREFIX = '$scram-sha-256$';
const SALT_BYTES = 16;

export interface ScramCredentials {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

const hmac = (key: Buffer, text: string | Buffer): Buffer => createHmac('sha256', key).update(text).digest();
const sha256 = (data: Buffer): Buffer => createHash('sha256').update(data).digest();

function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.alloc(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

/** SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations). */
export function saltedPassword(password: string | Buffer, salt: Buffer, iterations: number): Buffer {
  return pbkdf2Sync(password, salt, iterations, 32, 'sha256');
}

/** StoredKey and ServerKey for `password`, with a fresh random salt unless one is given. */
export function deriveScramCredentials(
  password: string | Buffer,
  iterations = DEFAULT_SCRAM_ITERATIONS,
  salt: Buffer = randomBytes(SALT_BYTES),
): ScramCredentials {
  const salted = saltedPassword(password, salt, iterations);
  return {
    iterations,
    salt,
    storedKey: sha256(hmac(salted, 'Client Key')),
    serverKey: hmac(salted, 'Server Key'),
  };
}

export function formatScram(c: ScramCredentials): string {
  const b = (x: Buffer) => x.toString('base64');
  return `${PREFIX}${c.iterations}$${b(c.salt)}$${b(c.storedKey)}$${b(c.serverKey)}`;
}

/** Parses a `$scram-sha-256$...` field; returns a problem description when it is not one. */
export function parseScram(text: string): ScramCredentials | string {
  if (!text.startsWith(PREFIX)) return 'not a $scram-sha-256$ field';
  const parts = text.slice(PREFIX.length).split('$');
  if (parts.length !== 4)
    return 'a $scram-sha-256$ field has the form $scram-sha-256$iterations$salt$storedKey$serverKey';
  const iterations = /^\d{1,8}$/.test(parts[0]) ? Number(parts[0]) : Number.NaN;
  if (!(iterations >= MIN_ITERATIONS && iterations <= MAX_ITERATIONS))
    return `the SCRAM iterations must be ${MIN_ITERATIONS}..${MAX_ITERATIONS}`;
  const base64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!parts.slice(1).every((x) => base64.test(x))) return 'SCRAM salt and keys must be base64';
  const [salt, storedKey, serverKey] = parts.slice(1).map((x) => Buffer.from(x, 'base64'));
  if (salt.length < 8) return 'the SCRAM salt must be at least 8 bytes';
  if (storedKey.length !== 32 || serverKey.length !== 32) return 'SCRAM keys must be 32 bytes';
  return { iterations, salt, storedKey, serverKey };
}

/** `attr=value` pairs of a SCRAM message, in order. */
function attributes(text: string): [string, string][] | undefined {
  const out: [string, string][] = [];
  for (const part of text.split(',')) {
    if (!/^[A-Za-z]=/.test(part)) return undefined;
    out.push([part[0], part.slice(2)]);
  }
  return out;
}

function decodeName(name: string): string | undefined {
  if (/=(?!2C|3D)/.test(name)) return undefined;
  return name.replace(/=2C/g, ',').replace(/=3D/g, '=');
}

const PRINTABLE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;

/** The client's side of the computation (tests, tools): proof and expected server signature. */
export function clientFinal(
  password: string | Buffer,
  clientFirstBare: string,
  serverFirst: string,
  channelBinding = 'biws',
): { clientFinal: string; serverSignature: string } {
  const attrs = new Map(attributes(serverFirst) ?? []);
  const salt = Buffer.from(attrs.get('s') ?? '', 'base64');
  const iterations = Number(attrs.get('i'));
  const salted = saltedPassword(password, salt, iterations);
  const clientKey = hmac(salted, 'Client Key');
  const withoutProof = `c=${channelBinding},r=${attrs.get('r')}`;
  const authMessage = `${clientFirstBare},${serverFirst},${withoutProof}`;
  const proof = xor(clientKey, hmac(sha256(clientKey), authMessage));
  const serverSignature = hmac(hmac(salted, 'Server Key'), authMessage);
  return {
    clientFinal: `${withoutProof},p=${proof.toString('base64')}`,
    serverSignature: serverSignature.toString('base64'),
  };
}

export type ScramStep =
  | { ok: true; message: string; username: string }
  | { ok: false; reason: string; message?: string };

/** A secret for the stand-in salt of unknown users: the same user always gets the same salt. */
const unknownUserSecret = randomBytes(32);

/**
 * The server side of one exchange. `start` takes client-first-message, `finish` client-final-message;
 * each answers the message to send back, or a failure. Unknown users and users without SCRAM
 * credentials go through the same steps with stand-in credentials and fail at `finish`, so the
 * exchange does not tell which users exist.
 */
export class ScramServer {
  private state: 'initial' | 'started' | 'done' = 'initial';
  private username = '';
  private credentials: ScramCredentials | undefined;
  private clientFirstBare = '';
  private serverFirst = '';
  private gs2Header = '';
  private nonce = '';

  constructor(
    private readonly lookup: (username: string) => ScramCredentials | undefined,
    /** The server's part of the nonce; random unless given (tests). */
    private readonly serverNonce: string = randomBytes(18).toString('base64'),
  ) {}

  get user(): string {
    return this.username;
  }

  start(clientFirst: string): ScramStep {
    if (this.state !== 'initial') return this.fail('client-first-message out of order');
    this.state = 'started';
    const m = /^([ny]|p=[^,]*),(a=[^,]*)?,(.*)$/.exec(clientFirst);
    if (m === null) return this.fail('malformed client-first-message');
    if (m[1].startsWith('p=')) return this.fail('channel binding is not supported');
    const bare = m[3];
    const attrs = attributes(bare);
    if (attrs === undefined || attrs.length < 2 || attrs[0][0] !== 'n' || attrs[1][0] !== 'r')
      return this.fail('malformed client-first-message');
    if (attrs.some(([k]) => k === 'm')) return this.fail('unsupported mandatory extension');
    const user = decodeName(attrs[0][1]);
    if (user === undefined || user.length === 0) return this.fail('malformed user name');
    const authzid = m[2] === undefined ? undefined : decodeName(m[2].slice(2));
    if (authzid !== undefined && authzid !== '' && authzid !== user)
      return this.fail('authorization identity differs from the user');
    const clientNonce = attrs[1][1];
    if (!PRINTABLE_NONCE.test(clientNonce)) return this.fail('malformed client nonce');
    this.username = user;
    this.credentials = this.lookup(user);
    const creds = this.credentials ?? standIn(user);
    this.gs2Header = `${m[1]},${m[2] ?? ''},`;
    this.clientFirstBare = bare;
    this.nonce = clientNonce + this.serverNonce;
    this.serverFirst = `r=${this.nonce},s=${creds.salt.toString('base64')},i=${creds.iterations}`;
    return { ok: true, message: this.serverFirst, username: user };
  }

  finish(clientFinalMessage: string): ScramStep {
    if (this.state !== 'started') return this.fail('client-final-message out of order');
    this.state = 'done';
    const at = clientFinalMessage.lastIndexOf(',p=');
    if (at < 0) return this.fail('malformed client-final-message');
    const withoutProof = clientFinalMessage.slice(0, at);
    const attrs = attributes(withoutProof);
    if (attrs === undefined || attrs.length < 2 || attrs[0][0] !== 'c' || attrs[1][0] !== 'r')
      return this.fail('malformed client-final-message');
    if (attrs[0][1] !== Buffer.from(this.gs2Header).toString('base64'))
      return this.fail('channel binding does not match the gs2 header');
    if (attrs[1][1] !== this.nonce) return this.fail('nonce mismatch');
    const proof = Buffer.from(clientFinalMessage.slice(at + 3), 'base64');
    const creds = this.credentials;
    const authMessage = `${this.clientFirstBare},${this.serverFirst},${withoutProof}`;
    const storedKey = creds?.storedKey ?? standIn(this.username).storedKey;
    const signature = hmac(storedKey, authMessage);
    const ok = proof.length === signature.length && timingSafeEqual(sha256(xor(proof, signature)), storedKey);
    if (creds === undefined || !ok)
      return this.fail(
        creds === undefined ? 'unknown user or no SCRAM credentials' : 'wrong proof',
        'e=invalid-proof',
      );
    const serverSignature = hmac(creds.serverKey, authMessage);
    return { ok: true, message: `v=${serverSignature.toString('base64')}`, username: this.username };
  }

  private fail(reason: string, message?: string): ScramStep {
    this.state = 'done';
    return { ok: false, reason, message };
  }
}

/** Credentials no password matches, with a salt that stays the same for a user name. */
function standIn(user: string): ScramCredentials {
  return {
    iterations: DEFAULT_SCRAM_ITERATIONS,
    salt: hmac(unknownUserSecret, user).subarray(0, SALT_BYTES),
    storedKey: hmac(unknownUserSecret, `stored:${user}`),
    serverKey: hmac(unknownUserSecret, `server:${user}`),
  };
}
