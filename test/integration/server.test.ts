import { once } from 'node:events';
import net from 'node:net';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, type BrokerDeps } from '../../src/broker/broker.js';
import { validateConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { ListenError, type RunningServer, startServer } from '../../src/server.js';
import { FakeClock } from '../helpers/fake-clock.js';
import { canConnect, freePort } from '../helpers/ports.js';

/** A logger whose JSON lines land in `lines`. */
function capturedLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger('debug', { write: (s: string) => lines.push(JSON.parse(s)) });
  const events = () => lines.map((l) => l.event).filter((e) => e !== undefined);
  return { logger, lines, events };
}

/** When the brokers' shutdown finishes: when the test says so. */
class ShutdownGate {
  release!: () => void;
  shutdownCalled = false;
  /** Resolves when the server has asked for shutdown. */
  readonly shutdownStarted: Promise<void>;
  started!: () => void;
  readonly gate = new Promise<void>((resolve) => {
    this.release = resolve;
  });

  constructor() {
    this.shutdownStarted = new Promise((resolve) => {
      this.started = resolve;
    });
  }

  /** A broker factory for startServer whose brokers' shutdown waits on this gate. */
  brokers(): (deps: BrokerDeps) => Broker {
    return (deps) => new GatedBroker(deps, this);
  }
}

/** A real broker whose shutdown finishes when its gate is released. */
class GatedBroker extends Broker {
  constructor(
    deps: BrokerDeps,
    private readonly gated: ShutdownGate,
  ) {
    super(deps);
  }

  override async shutdown(): Promise<void> {
    this.gated.shutdownCalled = true;
    this.gated.started();
    await this.gated.gate;
    await super.shutdown();
  }
}

describe('startServer', () => {
  const running: RunningServer[] = [];
  const clients: mqtt.MqttClient[] = [];

  afterEach(async () => {
    for (const c of clients.splice(0)) c.end(true);
    await Promise.all(running.splice(0).map((s) => s.close()));
  });

  async function config(overrides: Record<string, unknown> = {}) {
    return validateConfig({
      host: '127.0.0.1',
      port: await freePort(),
      wsPort: await freePort(),
      httpPort: await freePort(),
      ...overrides,
    });
  }

  it('starts every listener, logs each, and is ready', async () => {
    const cfg = await config();
    const { logger, lines, events } = capturedLogger();
    const server = await startServer(cfg, { logger });
    running.push(server);
    expect(server.ports).toEqual({ mqtt: cfg.port, ws: cfg.wsPort, http: cfg.httpPort });
    expect(server.ready).toBe(true);
    const started = lines.filter((l) => l.event === 'listener.started');
    expect(started.map((l) => [l.listener, l.port])).toEqual([
      ['http', cfg.httpPort],
      ['mqtt', cfg.port],
      ['ws', cfg.wsPort],
    ]);
    expect(events()).toContain('server.ready');
    const ready = await fetch(`http://127.0.0.1:${cfg.httpPort}/readyz`);
    expect(ready.status).toBe(200);
    await ready.text();
  });

  it('serves MQTT over TCP and WebSocket, and disconnects clients with 0x8B on close', async () => {
    const cfg = await config();
    const { logger, events } = capturedLogger();
    const server = await startServer(cfg, { logger });
    running.push(server);
    const options = { protocolVersion: 5 as const, reconnectPeriod: 0, connectTimeout: 5_000 };
    const tcp = await mqtt.connectAsync(`mqtt://127.0.0.1:${cfg.port}`, options);
    const ws = await mqtt.connectAsync(`ws://127.0.0.1:${cfg.wsPort}/mqtt`, options);
    clients.push(tcp, ws);
    expect(tcp.connected && ws.connected).toBe(true);

    const disconnected = new Promise<number | undefined>((resolve) =>
      tcp.once('disconnect', (packet) => resolve(packet.reasonCode)),
    );
    await server.close();
    expect(await disconnected).toBe(0x8b);
    expect(events()).toEqual(expect.arrayContaining(['server.stopping', 'server.stopped']));
    expect(await canConnect(cfg.port)).toBe(false);
  });

  it('creates no listener for a port of 0', async () => {
    const cfg = await config({ wsPort: 0, httpPort: 0 });
    const server = await startServer(cfg, { logger: capturedLogger().logger });
    running.push(server);
    expect(server.ports).toEqual({ mqtt: cfg.port });
  });

  it('is not ready while shutting down, and closes HTTP last', async () => {
    const cfg = await config();
    const broker = new ShutdownGate();
    const server = await startServer(cfg, {
      logger: capturedLogger().logger,
      createBroker: broker.brokers(),
    });
    const closing = server.close();
    expect(server.ready).toBe(false);
    const readyz = await fetch(`http://127.0.0.1:${cfg.httpPort}/readyz`, {
      headers: { connection: 'close' },
    });
    expect(readyz.status).toBe(503);
    await readyz.text();
    expect(await canConnect(cfg.port)).toBe(false);
    broker.release();
    await closing;
    expect(await canConnect(cfg.httpPort)).toBe(false);
    expect(server.close()).toBe(closing);
  });

  it('stops waiting for the broker after shutdownTimeoutMs', async () => {
    const cfg = await config({ shutdownTimeoutMs: 5_000 });
    const broker = new ShutdownGate();
    const clock = new FakeClock();
    const { logger, lines } = capturedLogger();
    const server = await startServer(cfg, { logger, clock, createBroker: broker.brokers() });
    const closing = server.close();
    await broker.shutdownStarted;
    clock.advance(5_000);
    await closing;
    expect(lines.find((l) => l.event === 'server.shutdown_timeout')).toMatchObject({ timeoutMs: 5_000 });
  });

  it('names the key of a port already in use, and undoes what started', async () => {
    const blocker = net.createServer();
    blocker.listen({ host: '127.0.0.1', port: 0 });
    await once(blocker, 'listening');
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const cfg = await config({ wsPort: taken });
      const broker = new ShutdownGate();
      broker.release();
      const attempt = startServer(cfg, { logger: capturedLogger().logger, createBroker: broker.brokers() });
      await expect(attempt).rejects.toThrow(ListenError);
      await expect(attempt).rejects.toThrow(
        new RegExp(`^wsPort: cannot listen on 127\\.0\\.0\\.1:${taken}: EADDRINUSE`),
      );
      expect(broker.shutdownCalled).toBe(true);
      expect(await canConnect(cfg.port)).toBe(false);
      expect(await canConnect(cfg.httpPort)).toBe(false);
    } finally {
      blocker.close();
    }
  });
});
