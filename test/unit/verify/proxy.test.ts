/** The verifier's fault proxy over real loopback sockets: pass, blackhole, delay and reset. */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { type FaultProxy, startProxy } from '../../../verify/proxy.js';
import { seeded } from '../../../verify/rng.js';

let echo: net.Server;
let proxy: FaultProxy | undefined;

async function startEcho(): Promise<number> {
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  return (echo.address() as net.AddressInfo).port;
}

afterEach(async () => {
  await proxy?.close();
  await new Promise((r) => echo.close(r));
});

/** Connects to the proxy and resolves the next chunk, or undefined after `ms`. */
function client(port: number) {
  const s = net.connect(port, '127.0.0.1');
  const next = (ms: number) =>
    new Promise<string | undefined>((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      s.once('data', (d) => {
        clearTimeout(t);
        resolve(d.toString());
      });
    });
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  s.on('error', () => undefined);
  return { s, next, closed, ready: new Promise<void>((r) => s.once('connect', () => r())) };
}

describe('verify/proxy', () => {
  it('(partition) forwards in pass mode, drops in blackhole, and reset() cuts every connection', async () => {
    proxy = await startProxy(await startEcho());
    const c = client(proxy.port);
    await c.ready;
    c.s.write('a');
    expect(await c.next(2_000)).toBe('a');
    proxy.mode = { kind: 'blackhole' };
    c.s.write('b');
    expect(await c.next(300)).toBeUndefined();
    proxy.reset();
    await c.closed;
  });

  it('(partition) delay mode forwards each chunk late and in order', async () => {
    proxy = await startProxy(await startEcho());
    proxy.mode = { kind: 'delay', ms: 150 };
    const c = client(proxy.port);
    await c.ready;
    const t0 = Date.now();
    c.s.write('x');
    expect(await c.next(2_000)).toBe('x');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(290); // both directions delayed
    c.s.destroy();
  });

  it('(replay) the seeded PRNG repeats its sequence for a seed', () => {
    const a = seeded(42);
    const b = seeded(42);
    const xs = Array.from({ length: 5 }, () => a.int(1000));
    expect(Array.from({ length: 5 }, () => b.int(1000))).toEqual(xs);
    const c = seeded(43);
    expect(Array.from({ length: 5 }, () => c.int(1000))).not.toEqual(xs);
  });
});
