/**
 * Starts an in-process single-node broker on a loopback TCP port for integration tests, optionally
 * with limits (`limits.*`) and the PROXY protocol on its listener.
 */

import type { AuthHooks } from '../../src/auth/types.js';
import { standaloneNode } from '../../src/backend/memory/cluster-hub.js';
import type { ClusterBackend } from '../../src/backend/types.js';
import { Broker } from '../../src/broker/broker.js';
import { type BrokerOptions, defaultBrokerOptions } from '../../src/broker/options.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { acceptor } from '../../src/connection/accept.js';
import { Limits } from '../../src/limits/limits.js';
import { defaultLimitOptions, type LimitOptions } from '../../src/limits/options.js';
import { createLogger } from '../../src/observability/logger.js';
import { AddressList } from '../../src/transport/address.js';
import type { ProxyRefusal } from '../../src/transport/proxied.js';
import { TcpListener } from '../../src/transport/tcp.js';
import type { Transport } from '../../src/transport/types.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  url: string;
  /** Limit hits by name (the broker's `rateLimited` stats). */
  limits: Limits;
  /** PROXY protocol refusals seen by the listener, in order. */
  proxyRefusals: ProxyRefusal[];
  close(): Promise<void>;
}

export interface TestBrokerDeps {
  clock?: Clock;
  auth?: Partial<AuthHooks>;
  limits?: Partial<LimitOptions>;
  /** Sees every accepted transport before it becomes a connection. */
  onTransport?: (transport: Transport) => void;
  /** Require a PROXY header from these proxies (IPs / CIDRs) on the listener. */
  proxyProtocol?: { trustedProxies: string[]; headerTimeoutMs?: number };
  /** Address the listener binds (default 127.0.0.1; `0.0.0.0` to accept from other loopback addresses too). */
  host?: string;
  /** Cluster mode with this backend (e.g. a node of a MemoryHub). */
  cluster?: ClusterBackend;
}

export async function startTestBroker(
  options: Partial<BrokerOptions> = {},
  deps: TestBrokerDeps = {},
): Promise<TestBroker> {
  const clock = deps.clock ?? systemClock;
  const limits = new Limits({ ...defaultLimitOptions, tcpKeepAliveSeconds: 0, ...deps.limits }, clock);
  const broker = new Broker({
    options: { ...defaultBrokerOptions, sysIntervalSeconds: 0, ...options },
    clock,
    logger: createLogger((process.env.SHOAL_TEST_LOG_LEVEL as 'silent') ?? 'silent'),
    version: 'test',
    auth: deps.auth,
    limits,
    cluster:
      deps.cluster ??
      standaloneNode(clock, 'test', options.maxQueuedMessages ?? defaultBrokerOptions.maxQueuedMessages),
  });
  await broker.start();
  const accept = acceptor(broker);
  const proxyRefusals: ProxyRefusal[] = [];
  const pp = deps.proxyProtocol;
  const listener = new TcpListener({
    host: deps.host ?? '127.0.0.1',
    port: 0,
    onConnection: (t) => {
      deps.onTransport?.(t);
      accept(t);
    },
    proxyProtocol:
      pp === undefined
        ? undefined
        : {
            trusted: new AddressList(pp.trustedProxies),
            headerTimeoutMs: pp.headerTimeoutMs ?? 3000,
            clock,
            onRefused: (reason) => {
              proxyRefusals.push(reason);
              limits.hit(reason === 'untrusted' ? 'proxy_untrusted' : 'proxy_header');
            },
          },
  });
  const port = await listener.listen();
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    limits,
    proxyRefusals,
    async close() {
      await listener.close();
      await broker.shutdown();
    },
  };
}
