/** The CONNECT claim gate (#13.7): bounded running claims, a bounded first-come queue, a bounded wait. */
import { describe, expect, it } from 'vitest';
import { ClaimGate, ClaimRefused } from '../../../src/limits/claim-gate.js';
import { FakeClock } from '../../helpers/fake-clock.js';
import { deferred } from '../../helpers/mqtt.js';

type Outcome = { ok: string } | { refused: string } | { failed: string } | 'pending';

function track(p: Promise<string>): { readonly outcome: Outcome } {
  const t: { outcome: Outcome } = { outcome: 'pending' };
  p.then(
    (ok) => {
      t.outcome = { ok };
    },
    (err: Error) => {
      t.outcome = err instanceof ClaimRefused ? { refused: err.why } : { failed: err.message };
    },
  );
  return t;
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('ClaimGate', () => {
  it('runs at most maxRunning claims at once and starts the waiters in arrival order', async () => {
    const gate = new ClaimGate({ maxRunning: 2, maxWaiting: 10, waitTimeoutMs: 1000 }, new FakeClock());
    const claims = [deferred<string>(), deferred<string>(), deferred<string>(), deferred<string>()];
    const started: number[] = [];
    const results = claims.map((d, i) =>
      track(
        gate.run(() => {
          started.push(i);
          return d.promise;
        }),
      ),
    );
    expect(started).toEqual([0, 1]);
    expect(gate.active).toBe(2);
    expect(gate.queued).toBe(2);
    claims[1].resolve('b');
    await settle();
    expect(started).toEqual([0, 1, 2]);
    expect(results[1].outcome).toEqual({ ok: 'b' });
    claims[0].reject(new Error('redis down'));
    await settle();
    // A failed claim frees its slot too, and its failure reaches its caller unchanged.
    expect(started).toEqual([0, 1, 2, 3]);
    expect(results[0].outcome).toEqual({ failed: 'redis down' });
    claims[2].resolve('c');
    claims[3].resolve('d');
    await settle();
    expect(results.map((r) => r.outcome)).toEqual([
      { failed: 'redis down' },
      { ok: 'b' },
      { ok: 'c' },
      { ok: 'd' },
    ]);
    expect(gate.active).toBe(0);
    expect(gate.queued).toBe(0);
  });

  it('refuses at once past maxWaiting, without running the claim', async () => {
    const gate = new ClaimGate({ maxRunning: 1, maxWaiting: 1, waitTimeoutMs: 1000 }, new FakeClock());
    const first = deferred<string>();
    gate.run(() => first.promise);
    gate.run(() => Promise.resolve('queued'));
    let ran = false;
    const third = track(
      gate.run(() => {
        ran = true;
        return Promise.resolve('never');
      }),
    );
    await settle();
    expect(third.outcome).toEqual({ refused: 'queue_full' });
    expect(ran).toBe(false);
    expect(gate.refused.queue_full).toBe(1);
  });

  it('refuses a waiter whose wait ran out, by the clock, and lets a later one in', async () => {
    const clock = new FakeClock();
    const gate = new ClaimGate({ maxRunning: 1, maxWaiting: 10, waitTimeoutMs: 1000 }, clock);
    const stuck = deferred<string>();
    gate.run(() => stuck.promise);
    clock.advance(400);
    const early = track(gate.run(() => Promise.resolve('early')));
    clock.advance(400);
    const late = track(gate.run(() => Promise.resolve('late')));
    clock.advance(600); // early has waited 1000 ms, late 600
    await settle();
    expect(early.outcome).toEqual({ refused: 'queue_timeout' });
    expect(late.outcome).toBe('pending');
    clock.advance(399);
    await settle();
    expect(late.outcome).toBe('pending');
    stuck.resolve('done');
    await settle();
    expect(late.outcome).toEqual({ ok: 'late' });
    expect(gate.refused.queue_timeout).toBe(1);
    expect(clock.pending).toBe(0);
  });

  it('skips a waiter whose connection closed while it waited', async () => {
    const gate = new ClaimGate({ maxRunning: 1, maxWaiting: 10, waitTimeoutMs: 1000 }, new FakeClock());
    const first = deferred<string>();
    gate.run(() => first.promise);
    let closed = false;
    let ran = false;
    const gone = track(
      gate.run(
        () => {
          ran = true;
          return Promise.resolve('x');
        },
        () => closed,
      ),
    );
    closed = true;
    first.resolve('a');
    await settle();
    expect(ran).toBe(false);
    expect(gone.outcome).toEqual({ refused: 'cancelled' });
    expect(gate.active).toBe(0);
  });

  it('with maxRunning 0 lets every claim through at once', async () => {
    const gate = new ClaimGate({ maxRunning: 0, maxWaiting: 0, waitTimeoutMs: 1000 }, new FakeClock());
    const all = Array.from({ length: 100 }, (_, i) => gate.run(() => Promise.resolve(String(i))));
    expect(await Promise.all(all)).toHaveLength(100);
  });

  it('keeps first-come order across a long queue (head index, compaction)', async () => {
    const gate = new ClaimGate({ maxRunning: 1, maxWaiting: 5000, waitTimeoutMs: 60_000 }, new FakeClock());
    const order: number[] = [];
    const all = Array.from({ length: 3000 }, (_, i) =>
      gate.run(() => {
        order.push(i);
        return Promise.resolve(String(i));
      }),
    );
    await Promise.all(all);
    expect(order).toEqual(Array.from({ length: 3000 }, (_, i) => i));
  });
});
