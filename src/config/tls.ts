/**
 * The TLS material the config names: read and checked at start before any listener binds, and
 * again on every rotation (tls-rotation.ts).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import type { TlsCredentials } from '../transport/tls.js';
import { ConfigError } from './errors.js';
import type { TlsConfig } from './schema.js';

/** Reads the PEM files named by the config; a file that cannot be read or used is a ConfigError. */
export function readTlsCredentials(config: TlsConfig): TlsCredentials {
  const read = (key: 'certFile' | 'keyFile' | 'caFile'): Buffer | undefined => {
    const file = config[key];
    if (file === null) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      throw ConfigError.at(`tls.${key}`, `cannot read ${file} (${(err as NodeJS.ErrnoException).code})`);
    }
  };
  const credentials: TlsCredentials = {
    cert: read('certFile')!,
    key: read('keyFile')!,
    ca: read('caFile'),
    requestClientCert: config.requestClientCert,
    rejectUnauthorized: config.rejectUnauthorized,
  };
  try {
    tls.createSecureContext({ cert: credentials.cert, key: credentials.key, ca: credentials.ca });
  } catch (err) {
    throw ConfigError.at('tls', `certificate, key or CA not usable: ${(err as Error).message}`);
  }
  return credentials;
}

/** When the first (leaf) certificate of a PEM bundle expires, in ms since the epoch; undefined if unreadable. */
export function certificateExpiresAt(pem: Buffer): number | undefined {
  try {
    return Date.parse(new X509Certificate(pem).validTo);
  } catch {
    return undefined;
  }
}
