/**
 * A fault-injecting TCP proxy on loopback (node `net`), placed between a node and Redis or between
 * clients and a node. Modes: pass; blackhole (accept, forward nothing, so peers hang like behind a
 * partition); delay N ms (each chunk forwarded N ms late, in order); and reset() destroys every
 * current connection.
 */
import net from 'node:net';

export type ProxyMode = { kind: 'pass' } | { kind: 'blackhole' } | { kind: 'delay'; ms: number };

export interface FaultProxy {
  readonly port: number;
  mode: ProxyMode;
  /** Destroys all current connections (both sides). */
  reset(): void;
  close(): Promise<void>;
}

export async function startProxy(targetPort: number, listenPort = 0): Promise<FaultProxy> {
  const pairs = new Set<[net.Socket, net.Socket]>();
  const proxy = {
    port: 0,
    mode: { kind: 'pass' } as ProxyMode,
    reset() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
    },
    close: () =>
      new Promise<void>((resolve) => {
        proxy.reset();
        server.close(() => resolve());
      }),
  };
  const forward = (from: net.Socket, to: net.Socket) => {
    from.on('data', (chunk) => {
      const m = proxy.mode;
      if (m.kind === 'blackhole') return;
      if (m.kind === 'delay') setTimeout(() => to.write(chunk), m.ms);
      else to.write(chunk);
    });
  };
  const server = net.createServer({ noDelay: true }, (client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: targetPort, noDelay: true });
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) {
      s.on('error', end);
      s.on('close', end);
    }
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listenPort, '127.0.0.1', () => resolve());
  });
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}
