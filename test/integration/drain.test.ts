/**
 * Graceful drain of one node (docs/deployment.md): /readyz goes 503 first, the listeners stop
 * accepting, clients are disconnected at `drain.ratePerSecond` with DISCONNECT 0x8B (or 0x9C with a
 * Server Reference), the rest go at once near shutdownTimeoutMs, wills of drained clients are not
 * published, and close() returns once every client is gone. Real sockets, real MQTT.js clients.
 * The cluster version (nodes behind HAProxy, clients moving over) is test/cluster/drain.test.ts.
 */
import mqtt from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { Broker, type BrokerDeps } from '../../src/broker/broker.js';
import { validateConfig } from '../../src/config/schema.js';
import { createLogger } from '../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../src/server.js';
import { canConnect, freePort } from '../helpers/ports.js';

const running: RunningServer[] = [];
const clients: mqtt.MqttClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.end(true);
  await Promise.all(running.splice(0).map((s) => s.close()));
});

async function start(overrides: Record<string, unknown>) {
  let broker!: Broker;
  const lines: Array<Record<string, unknown>> = [];
  const config = validateConfig({
    host: '127.0.0.1',
    port: await freePort(),
    wsPort: 0,
    httpPort: await freePort(),
    mqtt: { sysIntervalSeconds: 0 },
    ...overrides,
  });
  const server = await startServer(config, {
    logger: createLogger('info', { write: (s: string) => lines.push(JSON.parse(s)) }),
    createBroker: (deps: BrokerDeps) => {
      broker = new Broker(deps);
      return broker;
    },
  });
  running.push(server);
  return { server, broker, lines, url: `mqtt://127.0.0.1:${server.ports.mqtt}`, http: server.ports.http };
}

interface Drained {
  client: mqtt.MqttClient;
  /** Reason code and Server Reference of the DISCONNECT, and when it arrived (ms). */
  disconnect: Promise<{ reasonCode?: number; serverReference?: string; at: number }>;
}

async function connectMany(url: string, n: number, opts: mqtt.IClientOptions = {}): Promise<Drained[]> {
  const out: Drained[] = [];
  for (let i = 0; i < n; i++) {
    const client = await mqtt.connectAsync(url, {
      clientId: `drain-${i}-${Math.random().toString(36).slice(2, 7)}`,
      protocolVersion: 5,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...opts,
    });
    clients.push(client);
    const disconnect = new Promise<{ reasonCode?: number; serverReference?: string; at: number }>((resolve) =>
      client.once('disconnect', (p) =>
        resolve({ reasonCode: p.reasonCode, serverReference: p.properties?.serverReference, at: Date.now() }),
      ),
    );
    out.push({ client, disconnect });
  }
  return out;
}

async function readyz(port: number | undefined): Promise<number> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/readyz`);
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

describe('graceful drain', () => {
  it('goes not-ready, stops accepting, then disconnects clients at the configured rate with 0x8B', async () => {
    const { server, url, http, lines } = await start({ drain: { ratePerSecond: 20 } });
    const port = server.ports.mqtt as number;
    const drained = await connectMany(url, 20);
    expect(await readyz(http)).toBe(200);

    const started = Date.now();
    const closing = server.close();
    // From the first moment of the drain: /readyz 503 and no new connection accepted.
    expect(await readyz(http)).toBe(503);
    expect(await canConnect(port)).toBe(false);
    const results = await Promise.all(drained.map((d) => d.disconnect));
    await closing;

    expect(results.every((r) => r.reasonCode === 0x8b)).toBe(true);
    const spread = Math.max(...results.map((r) => r.at)) - Math.min(...results.map((r) => r.at));
    // 20 clients at 20/s: about 0.9 s from the first slice to the last, far from one burst.
    expect(spread).toBeGreaterThan(600);
    expect(Date.now() - started).toBeLessThan(5_000);
    const events = lines.map((l) => l.event);
    expect(events).toEqual(expect.arrayContaining(['server.stopping', 'drain.started', 'server.stopped']));
  });

  it('sends 0x9C Use another server with the Server Reference when configured', async () => {
    const { server, url } = await start({ drain: { serverReference: 'mqtt-b.example:1883' } });
    const [d] = await connectMany(url, 1);
    await server.close();
    expect(await d.disconnect).toMatchObject({ reasonCode: 0x9c, serverReference: 'mqtt-b.example:1883' });
  });

  it('keeps /readyz 503 with the listeners open for drain.notReadyDelayMs first', async () => {
    const { server, http } = await start({ drain: { notReadyDelayMs: 600 } });
    const port = server.ports.mqtt as number;
    const closing = server.close();
    expect(await readyz(http)).toBe(503);
    // Load balancers still route here until they notice: connections are still accepted.
    expect(await canConnect(port)).toBe(true);
    await closing;
    expect(await canConnect(port)).toBe(false);
  });

  it('disconnects whatever is left at once when the rate would overrun shutdownTimeoutMs', async () => {
    const { server, url } = await start({ drain: { ratePerSecond: 1 }, shutdownTimeoutMs: 3_000 });
    const drained = await connectMany(url, 8);
    const started = Date.now();
    await server.close();
    const results = await Promise.all(drained.map((d) => d.disconnect));
    expect(results.every((r) => r.reasonCode === 0x8b)).toBe(true);
    // 8 clients at 1/s would take 8 s; the rest went at the deadline (3 s - 2.5 s margin).
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it('publishes no will for drained clients (persistent or not) and keeps persistent sessions consistent', async () => {
    const { server, url, broker } = await start({ drain: { ratePerSecond: 50 } });
    const will = (topic: string) => ({ topic, payload: Buffer.from('gone'), qos: 1 as const, retain: true });
    const [persistent] = await connectMany(url, 1, {
      will: will('wills/persistent'),
      properties: { sessionExpiryInterval: 600 },
    });
    const [clean] = await connectMany(url, 1, { will: will('wills/clean') });
    await persistent.client.subscribeAsync('keep/#', { qos: 1 });
    await server.close();
    await Promise.all([persistent.disconnect, clean.disconnect]);
    expect(broker.retained.get('wills/persistent')).toBeUndefined();
    expect(broker.retained.get('wills/clean')).toBeUndefined();
    // The persistent session is still whole (subscriptions kept) when the node stops.
    const id = persistent.client.options.clientId as string;
    expect(broker.inspector.client(id)?.subscriptions.map((s) => s.topicFilter)).toEqual(['keep/#']);
  });

  it('exports shoal_draining while it drains', async () => {
    const { server, url, http } = await start({ drain: { ratePerSecond: 2 } });
    await connectMany(url, 3);
    const closing = server.close();
    const text = await fetch(`http://127.0.0.1:${http}/metrics`).then((r) => r.text());
    expect(text.split('\n')).toContain('shoal_draining 1');
    expect(text.split('\n')).toContain('shoal_ready 0');
    await closing;
  });
});
