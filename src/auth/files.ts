/**
 * Reading the auth files: the password file, the ACL file and the JWT key files. At start a
 * problem is a ConfigError naming the key (the broker exits with code 2); on a reload it is a plain
 * Error the caller logs, keeping the previous content.
 */
import type { KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { JSONWebKeySet } from 'jose';
import { ConfigError } from '../config/errors.js';
import type { JwtConfig } from '../config/schema.js';
import { AclError, parseAcl } from './acl.js';
import { type JwtKeys, parseJwks, readPublicKey } from './jwt.js';
import { PasswordFileError, parsePasswordFile } from './password-file.js';

export type When = 'start' | 'reload';

function readFile(key: string, file: string, when: When): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw loadError(key, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`, when);
  }
}

export function readPasswords(file: string, when: When) {
  try {
    return parsePasswordFile(readFile('auth.passwordFile', file, when));
  } catch (err) {
    if (err instanceof PasswordFileError)
      throw loadError('auth.passwordFile', `${file} ${err.message}`, when);
    throw err;
  }
}

export function readAcl(file: string, when: When) {
  try {
    return parseAcl(readFile('auth.aclFile', file, when));
  } catch (err) {
    if (err instanceof AclError) throw loadError('auth.aclFile', `${file}: ${err.message}`, when);
    throw err;
  }
}

export function readJwtKeys(j: JwtConfig, when: When): JwtKeys | undefined {
  if (j.secret === null && j.publicKeyFile === null && j.jwksFile === null) return undefined;
  let publicKey: KeyObject | undefined;
  let jwks: JSONWebKeySet | undefined;
  if (j.publicKeyFile !== null) {
    const file = j.publicKeyFile;
    const text = readFile('auth.jwt.publicKeyFile', file, when);
    try {
      publicKey = readPublicKey(text);
    } catch (err) {
      throw loadError(
        'auth.jwt.publicKeyFile',
        `${file} is not a PEM public key or certificate (${short(err)})`,
        when,
      );
    }
  }
  if (j.jwksFile !== null) {
    const file = j.jwksFile;
    const text = readFile('auth.jwt.jwksFile', file, when);
    try {
      jwks = parseJwks(text);
    } catch (err) {
      throw loadError('auth.jwt.jwksFile', `${file} is not a JSON Web Key Set (${short(err)})`, when);
    }
  }
  return { secret: j.secret ?? undefined, publicKey, jwks };
}

/** At start a problem stops the broker (ConfigError, exit 2); on reload it is logged. */
function loadError(key: string, problem: string, when: When): Error {
  return when === 'start' ? ConfigError.at(key, problem) : new Error(problem);
}

export function short(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}
