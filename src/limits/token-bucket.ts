/**
 * A token bucket on an injected clock: `ratePerSecond` tokens flow in, up to `burst`. Spending may
 * take the balance below zero (a debt), so one large message is never refused outright: it is paid
 * for by waiting (or refused, if the caller chooses) afterwards.
 */
import type { Clock } from '../clock.js';

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly ratePerSecond: number,
    readonly burst: number,
    private readonly clock: Clock,
  ) {
    if (!(ratePerSecond > 0) || !(burst > 0))
      throw new RangeError('TokenBucket needs a positive rate and burst');
    this.tokens = burst;
    this.last = clock.now();
  }

  /** Tokens available now (negative while in debt). */
  get balance(): number {
    this.refill();
    return this.tokens;
  }

  /** Spends `n` tokens; returns the balance after (negative: over the rate). */
  spend(n: number): number {
    this.refill();
    this.tokens -= n;
    return this.tokens;
  }

  /**
   * Spends `n` tokens only when the balance covers them; returns whether it did. For admission
   * decisions (a CONNECT), where there is nothing to wait for.
   */
  take(n = 1): boolean {
    this.refill();
    if (this.tokens < n) return false;
    this.tokens -= n;
    return true;
  }

  /** Milliseconds until the balance is back to zero (0 when it is not in debt). */
  get debtMs(): number {
    const b = this.balance;
    return b >= 0 ? 0 : Math.ceil((-b * 1000) / this.ratePerSecond);
  }

  private refill(): void {
    const now = this.clock.now();
    const elapsed = now - this.last;
    if (elapsed <= 0) return;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSecond) / 1000);
  }
}
