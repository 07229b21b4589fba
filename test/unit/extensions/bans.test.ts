/** Bans and flapping detection (src/extensions/bans.ts) on the memory store, with a fake clock. */
import { describe, expect, it } from 'vitest';
import { MemoryBanStore } from '../../../src/backend/memory/bans.js';
import { Banning } from '../../../src/extensions/bans.js';
import { createLogger } from '../../../src/observability/logger.js';
import { FakeClock } from '../../helpers/fake-clock.js';

function banning(flapping = { enabled: false, maxConnects: 3, windowSeconds: 10, banSeconds: 60 }) {
  const clock = new FakeClock();
  const store = new MemoryBanStore(clock);
  let enforced = 0;
  const b = new Banning({
    store,
    clock,
    logger: createLogger('silent'),
    flapping,
    enforce: () => enforced++,
  });
  return { b, clock, store, enforced: () => enforced };
}

describe('bans', () => {
  it('match by client id, user name and address (an IP or a CIDR range, v4 and v6); a change is enforced', async () => {
    const { b, enforced } = banning();
    await b.add({ kind: 'clientId', value: 'c1', reason: 'r', by: 'admin' });
    await b.add({ kind: 'username', value: 'mallory', by: 'admin' });
    await b.add({ kind: 'address', value: '10.1.0.0/16', by: 'admin' });
    await b.add({ kind: 'address', value: 'fd00::1', by: 'admin' });
    expect(enforced()).toBe(4);
    expect(b.banOf('c1', undefined, undefined)?.reason).toBe('r');
    expect(b.banOf('c2', 'mallory', '192.0.2.1')?.kind).toBe('username');
    expect(b.banOf('c2', 'alice', '10.1.200.3')?.value).toBe('10.1.0.0/16');
    expect(b.banOf('c2', 'alice', '::ffff:10.1.0.9')?.value).toBe('10.1.0.0/16');
    expect(b.banOf('c2', 'alice', 'fd00::1')?.kind).toBe('address');
    expect(b.banOf('c2', 'alice', '10.2.0.1')).toBeUndefined();
    expect(await b.remove('clientId', 'c1')).toBe(true);
    expect(await b.remove('clientId', 'c1')).toBe(false);
    expect(b.banOf('c1', undefined, undefined)).toBeUndefined();
  });

  it('a ban with an end stops matching once it is over', async () => {
    const { b, clock } = banning();
    await b.add({ kind: 'clientId', value: 'c1', seconds: 30, by: 'admin' });
    clock.advance(29_999);
    expect(b.banOf('c1', undefined, undefined)).toBeDefined();
    clock.advance(1);
    expect(b.banOf('c1', undefined, undefined)).toBeUndefined();
    expect(b.bans).toEqual([]);
  });

  it('flapping: the connect past maxConnects in one window bans the client id for banSeconds, once', async () => {
    const { b, clock } = banning({ enabled: true, maxConnects: 3, windowSeconds: 10, banSeconds: 60 });
    for (let i = 0; i < 3; i++) b.connected('f1');
    await Promise.resolve();
    expect(b.banOf('f1', undefined, undefined)).toBeUndefined();
    b.connected('f1');
    await new Promise((r) => setImmediate(r));
    const ban = b.banOf('f1', undefined, undefined);
    expect(ban).toMatchObject({ kind: 'clientId', by: 'flapping' });
    expect(ban?.until).toBe(clock.now() + 60_000);
    expect(b.flappingBans).toBe(1);
    // A new window counts from zero.
    await b.remove('clientId', 'f1');
    clock.advance(10_000);
    for (let i = 0; i < 3; i++) b.connected('f1');
    await new Promise((r) => setImmediate(r));
    expect(b.banOf('f1', undefined, undefined)).toBeUndefined();
  });
});
