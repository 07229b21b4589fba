/**
 * Certificate rotation without a restart (#14): the certificate, key and CA files are read again on
 * SIGHUP and, with `tls.watchFiles`, whenever one of them changes on disk (also when the kubelet
 * swaps a mounted Secret, as cert-manager's renewals do: watch.ts). New material is checked first
 * (readTlsCredentials: a key that does not match its certificate is refused) and then handed to every
 * TLS and WSS listener: new handshakes get it, connections already open keep theirs. Material that
 * fails the check is logged with the key it came from, and the listeners keep what they had.
 */
import type { Clock } from '../clock.js';
import type { Logger } from '../observability/logger.js';
import type { RotatableTls, TlsCredentials } from '../transport/tls.js';
import { ConfigError } from './errors.js';
import type { TlsConfig } from './schema.js';
import { certificateExpiresAt, readTlsCredentials } from './tls.js';
import { type FileWatch, watchFile } from './watch.js';

export interface TlsRotationOptions {
  config: TlsConfig;
  clock: Clock;
  logger: Logger;
  /** The credentials read at start (what the listeners were made with). */
  initial: TlsCredentials;
  /** Watch the files; SIGHUP (reload()) works either way. */
  watch: boolean;
  /** Debounce of the file watch (tests shorten it). */
  debounceMs?: number;
}

export class TlsRotation {
  private readonly targets: RotatableTls[] = [];
  private readonly watches: FileWatch[] = [];
  private current: TlsCredentials;
  /** When the served certificate expires (ms since the epoch), for shoal_tls_certificate_expiry_timestamp_seconds. */
  expiresAt: number | undefined;
  /** Reloads applied and refused since start. */
  readonly reloads = { ok: 0, failed: 0 };

  constructor(private readonly o: TlsRotationOptions) {
    this.current = o.initial;
    this.expiresAt = certificateExpiresAt(o.initial.cert);
    if (!o.watch) return;
    const files = [o.config.certFile, o.config.keyFile, o.config.caFile].filter(
      (f): f is string => f !== null,
    );
    for (const file of new Set(files))
      this.watches.push(
        watchFile(file, () => this.reload(), o.clock, {
          debounceMs: o.debounceMs,
          onError: (err) => o.logger.warn({ event: 'tls.watch_failed', file, reason: err.message }),
        }),
      );
  }

  /** A listener that serves the certificate: it gets every accepted rotation. */
  add(target: RotatableTls): void {
    this.targets.push(target);
  }

  /** Reads the files again; true when the new material was accepted and handed to the listeners. */
  reload(): boolean {
    let next: TlsCredentials;
    try {
      next = readTlsCredentials(this.o.config);
    } catch (err) {
      this.reloads.failed++;
      this.o.logger.error({
        event: 'tls.reload_failed',
        key: err instanceof ConfigError ? err.issues[0]?.path : 'tls',
        reason: err instanceof ConfigError ? err.issues[0]?.problem : String(err),
      });
      return false;
    }
    const same =
      next.cert.equals(this.current.cert) &&
      next.key.equals(this.current.key) &&
      (next.ca?.equals(this.current.ca ?? Buffer.alloc(0)) ?? this.current.ca === undefined);
    if (same) return true;
    for (const t of this.targets) t.setCredentials(next);
    this.current = next;
    this.expiresAt = certificateExpiresAt(next.cert);
    this.reloads.ok++;
    this.o.logger.info({
      event: 'tls.reloaded',
      certFile: this.o.config.certFile,
      notAfter: this.expiresAt === undefined ? undefined : new Date(this.expiresAt).toISOString(),
    });
    return true;
  }

  close(): void {
    for (const w of this.watches.splice(0)) w.close();
  }
}
