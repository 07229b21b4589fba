/**
 * Starts an in-process single-node broker on a loopback TCP port for integration tests.
 */

import type { AuthHooks } from '../../src/auth/types.js';
import { Broker } from '../../src/broker/broker.js';
import { type BrokerOptions, defaultBrokerOptions } from '../../src/broker/options.js';
import { type Clock, systemClock } from '../../src/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { TcpListener } from '../../src/transport/tcp.js';

export interface TestBroker {
  broker: Broker;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startTestBroker(
  options: Partial<BrokerOptions> = {},
  deps: { clock?: Clock; auth?: Partial<AuthHooks> } = {},
): Promise<TestBroker> {
  const broker = new Broker({
    options: { ...defaultBrokerOptions, sysIntervalSeconds: 0, ...options },
    clock: deps.clock ?? systemClock,
    logger: createLogger((process.env.SHOAL_TEST_LOG_LEVEL as 'silent') ?? 'silent'),
    version: 'test',
    auth: deps.auth,
  });
  broker.start();
  const listener = new TcpListener({ host: '127.0.0.1', port: 0, onConnection: (t) => broker.accept(t) });
  const port = await listener.listen();
  return {
    broker,
    port,
    url: `mqtt://127.0.0.1:${port}`,
    async close() {
      await listener.close();
      await broker.shutdown();
    },
  };
}
