import { describe, expect, it } from 'vitest';
import { FailureBackoff } from '../../../src/auth/backoff.js';

describe('per-address failure backoff', () => {
  it('doubles the pause with each consecutive failure, up to the maximum; a success clears it', () => {
    let now = 0;
    const b = new FailureBackoff({ initialDelayMs: 1000, maxDelayMs: 5000 }, () => now);
    expect(b.blockedFor('10.0.0.1')).toBe(0);
    const pauses: number[] = [];
    for (let i = 0; i < 5; i++) {
      b.failed('10.0.0.1');
      pauses.push(b.blockedFor('10.0.0.1'));
    }
    expect(pauses).toEqual([1000, 2000, 4000, 5000, 5000]);
    expect(b.blockedFor('10.0.0.2')).toBe(0);
    now += 4999;
    expect(b.blockedFor('10.0.0.1')).toBe(1);
    now += 1;
    expect(b.blockedFor('10.0.0.1')).toBe(0);
    b.succeeded('10.0.0.1');
    b.failed('10.0.0.1');
    expect(b.blockedFor('10.0.0.1')).toBe(1000);
  });

  it('a long quiet spell starts the count over', () => {
    let now = 0;
    const b = new FailureBackoff({ initialDelayMs: 100, maxDelayMs: 1000 }, () => now);
    b.failed('a');
    b.failed('a');
    b.failed('a');
    expect(b.blockedFor('a')).toBe(400);
    now += 400 + 2001;
    b.failed('a');
    expect(b.blockedFor('a')).toBe(100);
  });
});
