/**
 * The password file: one `user:$scrypt$N$r$p$salt$hash` line per user (salt and hash base64), `#`
 * comments and blank lines ignored. A line may carry a second field, `:$scram-sha-256$...` (see
 * scram.ts), for MQTT 5 enhanced authentication; users without it can only log in by password. Hashing and verifying with node:crypto's scrypt, run on the
 * libuv thread pool so a login never blocks the event loop; comparison in constant time.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import type { ErrorCode } from '../errors.js';
import { parseScram, type ScramCredentials } from './scram.js';

export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  r: number;
  p: number;
}

/** 2^14, r 8, p 1: about 16 MiB and tens of milliseconds per hash. */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = { N: 16384, r: 8, p: 1 };

const SALT_BYTES = 16;
const HASH_BYTES = 32;
const PREFIX = '$scrypt$';
/** Bounds on the parameters a file may name, so a hostile file cannot make a login cost minutes. */
const MAX_N = 2 ** 20;
const MAX_R = 32;
const MAX_P = 16;

export interface PasswordHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
  /** SCRAM-SHA-256 credentials, when the line has them. */
  scram?: ScramCredentials;
}

/** A problem with the file, naming the line. */
export class PasswordFileError extends Error {
  override readonly name = 'PasswordFileError';
  readonly code = 'PASSWORD_FILE_INVALID' satisfies ErrorCode;

  constructor(
    readonly line: number,
    problem: string,
  ) {
    super(`line ${line}: ${problem}`);
  }
}

function scryptAsync(
  password: Buffer | string,
  salt: Buffer,
  length: number,
  params: ScryptParams,
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password, salt, length, { ...params, maxmem: maxmem(params) }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

/** scrypt needs 128 * N * r bytes; leave headroom above Node's 32 MiB default. */
function maxmem(params: ScryptParams): number {
  return 256 * params.N * params.r + 1024 * 1024;
}

/** `$scrypt$N$r$p$salt$hash` for `password` with a fresh random salt. */
export async function hashPassword(
  password: string | Buffer,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await scryptAsync(password, salt, HASH_BYTES, params);
  return formatHash({ params, salt, hash });
}

export function formatHash(h: PasswordHash): string {
  const { N, r, p } = h.params;
  return `${PREFIX}${N}$${r}$${p}$${h.salt.toString('base64')}$${h.hash.toString('base64')}`;
}

/** Parses a `$scrypt$...` string; returns a problem description when it is not one. */
export function parseHash(text: string): PasswordHash | string {
  if (!text.startsWith(PREFIX)) return 'not a $scrypt$ hash';
  const parts = text.slice(PREFIX.length).split('$');
  if (parts.length !== 5) return 'a $scrypt$ hash has the form $scrypt$N$r$p$salt$hash';
  const [N, r, p] = parts.slice(0, 3).map((x) => (/^\d{1,8}$/.test(x) ? Number(x) : Number.NaN));
  if (!(N >= 2 && N <= MAX_N && (N & (N - 1)) === 0)) return `N must be a power of two up to ${MAX_N}`;
  if (!(r >= 1 && r <= MAX_R)) return `r must be 1..${MAX_R}`;
  if (!(p >= 1 && p <= MAX_P)) return `p must be 1..${MAX_P}`;
  const base64 = /^[A-Za-z0-9+/]+={0,2}$/;
  if (!base64.test(parts[3]) || !base64.test(parts[4])) return 'salt and hash must be base64';
  const salt = Buffer.from(parts[3], 'base64');
  const hash = Buffer.from(parts[4], 'base64');
  if (salt.length < 8) return 'the salt must be at least 8 bytes';
  if (hash.length < 16 || hash.length > 64) return 'the hash must be 16..64 bytes';
  return { params: { N, r, p }, salt, hash };
}

/** True when `password` hashes to `h`; the comparison takes the same time wherever they differ. */
export async function verifyPassword(password: Buffer | string, h: PasswordHash): Promise<boolean> {
  const candidate = await scryptAsync(password, h.salt, h.hash.length, h.params);
  return timingSafeEqual(candidate, h.hash);
}

/**
 * Compared against when the user is unknown, so an unknown user takes as long to refuse as a wrong
 * password (no user enumeration by timing).
 */
let dummy: PasswordHash | undefined;
export function dummyHash(): PasswordHash {
  dummy ??= {
    params: { ...DEFAULT_SCRYPT },
    salt: randomBytes(SALT_BYTES),
    // Random bytes: no password hashes to them, and checking costs one scrypt like any other.
    hash: randomBytes(HASH_BYTES),
  };
  return dummy;
}

/** A user name the file can hold: no `:` (the separator), no line breaks, not empty. */
export function checkUsername(user: string): string | undefined {
  if (user.length === 0) return 'the user name is empty';
  if (/[:\r\n]/.test(user)) return 'the user name may not contain ":" or line breaks';
  if (user.startsWith('#')) return 'the user name may not start with "#"';
  return undefined;
}

/** Users and their hashes, parsed from the file's text. Throws PasswordFileError naming the first bad line. */
export function parsePasswordFile(text: string): Map<string, PasswordHash> {
  const users = new Map<string, PasswordHash>();
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new PasswordFileError(i + 1, 'expected user:$scrypt$N$r$p$salt$hash');
    const user = line.slice(0, colon);
    const fields = line.slice(colon + 1).split(':');
    if (fields.length > 2) throw new PasswordFileError(i + 1, 'too many fields');
    const parsed = parseHash(fields[0]);
    if (typeof parsed === 'string') throw new PasswordFileError(i + 1, parsed);
    if (fields.length === 2) {
      const scram = parseScram(fields[1]);
      if (typeof scram === 'string') throw new PasswordFileError(i + 1, scram);
      parsed.scram = scram;
    }
    if (users.has(user)) throw new PasswordFileError(i + 1, 'the user is listed twice');
    users.set(user, parsed);
  }
  return users;
}

export type PasswordCheck = 'ok' | 'bad_password' | 'unknown_user';

/** The users of one password file; `replace` swaps them in at once (a reload). */
export class PasswordStore {
  private users: Map<string, PasswordHash>;

  constructor(users: Map<string, PasswordHash> = new Map()) {
    this.users = users;
  }

  get size(): number {
    return this.users.size;
  }

  has(user: string): boolean {
    return this.users.has(user);
  }

  replace(users: Map<string, PasswordHash>): void {
    this.users = users;
  }

  /** The user's SCRAM-SHA-256 credentials, when the file has them. */
  scram(user: string): ScramCredentials | undefined {
    return this.users.get(user)?.scram;
  }

  async check(user: string, password: Buffer | string): Promise<PasswordCheck> {
    const h = this.users.get(user);
    const ok = await verifyPassword(password, h ?? dummyHash());
    if (h === undefined) return 'unknown_user';
    return ok ? 'ok' : 'bad_password';
  }
}
