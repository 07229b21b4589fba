/**
 * Per-address backoff after failed logins: after the n-th consecutive failure from an address, its
 * logins are refused without being checked for initialDelayMs * 2^(n-1) (at most maxDelayMs). A
 * success clears the address. Refusing unchecked (rather than delaying the answer) is what slows a
 * guesser down: parallel connections gain nothing, and no password hash is computed for them.
 */

export interface BackoffOptions {
  initialDelayMs: number;
  maxDelayMs: number;
}

interface Entry {
  failures: number;
  /** No login from the address is checked before this time. */
  until: number;
}

/** Addresses remembered at most; past this the oldest failures are forgotten. */
const MAX_ADDRESSES = 100_000;

export class FailureBackoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly options: BackoffOptions,
    private readonly now: () => number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Milliseconds until `address` may try again; 0 when it may now. */
  blockedFor(address: string): number {
    const e = this.entries.get(address);
    if (e === undefined) return 0;
    return Math.max(0, e.until - this.now());
  }

  failed(address: string): void {
    const now = this.now();
    let e = this.entries.get(address);
    // A long quiet spell (twice the longest delay) starts the count over.
    if (e !== undefined && now - e.until > 2 * this.options.maxDelayMs) e = undefined;
    const failures = (e?.failures ?? 0) + 1;
    const delay = Math.min(
      this.options.initialDelayMs * 2 ** Math.min(failures - 1, 40),
      this.options.maxDelayMs,
    );
    this.entries.delete(address); // re-insert: the map stays ordered by last failure
    if (this.entries.size >= MAX_ADDRESSES) this.prune(now);
    this.entries.set(address, { failures, until: now + delay });
  }

  succeeded(address: string): void {
    this.entries.delete(address);
  }

  private prune(now: number): void {
    for (const [address, e] of this.entries) {
      if (this.entries.size < MAX_ADDRESSES && now - e.until <= 2 * this.options.maxDelayMs) break;
      this.entries.delete(address);
    }
  }
}
