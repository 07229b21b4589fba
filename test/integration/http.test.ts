import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObservabilityServer } from '../../src/observability/http.js';
import { createMetricsRegistry, registerBrokerMetrics } from '../../src/observability/metrics.js';
import type { BrokerStats } from '../../src/observability/stats.js';
import { freePort } from '../helpers/ports.js';

describe('observability HTTP server', () => {
  let server: ObservabilityServer;
  let base: string;
  let ready: boolean;
  let scrapes: number;
  let stats: BrokerStats;
  const initialStats: BrokerStats = {
    clientsConnected: 3,
    clientsTotal: 17,
    messagesReceived: 1200,
    messagesSent: 3400,
    bytesReceived: 56_000,
    bytesSent: 78_000,
    subscriptions: 9,
    retained: 4,
    dropped: { slow_client: 5, queue_full: 2 },
    sessions: 6,
    clusterMessagesSent: 0,
    clusterBatchesSent: 0,
    clusterMessagesReceived: 0,
  };

  beforeEach(async () => {
    stats = { ...initialStats, dropped: { ...initialStats.dropped } };
    ready = false;
    scrapes = 0;
    const registry = createMetricsRegistry();
    registerBrokerMetrics(registry, () => {
      scrapes++;
      return stats;
    });
    server = new ObservabilityServer({
      host: '127.0.0.1',
      port: await freePort(),
      registry,
      ready: () => ready,
    });
    base = `http://127.0.0.1:${await server.listen()}`;
  });

  afterEach(async () => {
    await server.close();
  });

  it('/healthz answers 200 while the process runs', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('/readyz follows the ready callback', async () => {
    const before = await fetch(`${base}/readyz`);
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ status: 'not ready' });
    ready = true;
    const after = await fetch(`${base}/readyz`);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ status: 'ready' });
    ready = false;
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
  });

  it('/metrics exports the broker stats, read once per scrape', async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    const lines = text.split('\n');
    for (const line of [
      'shoal_clients_connected 3',
      'shoal_clients_total 17',
      'shoal_messages_received_total 1200',
      'shoal_messages_sent_total 3400',
      'shoal_bytes_received_total 56000',
      'shoal_bytes_sent_total 78000',
      'shoal_subscriptions 9',
      'shoal_retained_messages 4',
      'shoal_sessions 6',
      'shoal_messages_dropped_total{reason="slow_client"} 5',
      'shoal_messages_dropped_total{reason="queue_full"} 2',
      '# TYPE shoal_messages_received_total counter',
      '# TYPE shoal_clients_connected gauge',
    ]) {
      expect(lines).toContain(line);
    }
    expect(text).toMatch(/^# HELP shoal_clients_connected \S/m);
    expect(text).toMatch(/^shoal_process_cpu_user_seconds_total /m);
    expect(scrapes).toBe(1);
  });

  it('follows the stats between scrapes', async () => {
    await fetch(`${base}/metrics`).then((r) => r.text());
    stats.clientsConnected = 4;
    stats.dropped = { slow_client: 6 };
    const text = await fetch(`${base}/metrics`).then((r) => r.text());
    expect(text.split('\n')).toContain('shoal_clients_connected 4');
    expect(text.split('\n')).toContain('shoal_messages_dropped_total{reason="slow_client"} 6');
    expect(text).not.toContain('reason="queue_full"');
    expect(scrapes).toBe(2);
  });

  it('answers 404 elsewhere and 405 to other methods', async () => {
    expect((await fetch(`${base}/`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});
