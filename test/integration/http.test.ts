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
    authFailures: 8,
    sessions: 6,
    clusterMessagesSent: 0,
    clusterBatchesSent: 0,
    clusterMessagesReceived: 0,
    connectionsOpen: 4,
    connectedBy: { 'tcp 5': 2, 'ws 4': 1 },
    connectsBy: { 'tcp 5': 12, 'ws 4': 5 },
    sessionsOffline: 3,
    sharedGroups: 2,
    receivedByQos: [1000, 150, 50],
    receivedBytesByQos: [40_000, 10_000, 6_000],
    sentByQos: [3000, 300, 100],
    sentBytesByQos: [60_000, 12_000, 6_000],
    rateLimited: { connect_rate: 7 },
    claimsRunning: 2,
    claimsQueued: 5,
    takeovers: 1,
    draining: false,
    connacks: { '5 0x00': 10, '5 0x86': 2, '4 0x05': 1 },
    disconnects: { client_disconnect: 4, connection_lost: 2, keep_alive_timeout: 1 },
    authz: { 'publish allow': 90, 'publish deny': 3, 'subscribe allow': 9, 'subscribe deny': 1 },
    packetsReceived: { connect: 13, publish: 1200, pingreq: 7 },
    packetsSent: { connack: 13, publish: 3400, pingresp: 7 },
    sessionsCreated: 11,
    sessionsResumed: 2,
    sessionsDiscarded: 1,
    sessionsExpired: 3,
    inflight: 12,
    queued: 34,
    clusterRoutes: 0,
    clusterSessionRoutes: 0,
    rewrites: { publish: 2 },
    autoSubscriptions: 4,
    bans: 1,
    bannedConnects: 2,
    flappingBans: 0,
    delayedStored: 3,
    delayedPublished: 5,
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
      'shoal_auth_failures_total 8',
      'shoal_messages_dropped_total{reason="slow_client"} 5',
      'shoal_messages_dropped_total{reason="queue_full"} 2',
      'shoal_connections{listener="tcp",protocol="5"} 2',
      'shoal_connections{listener="ws",protocol="4"} 1',
      'shoal_connections_total{listener="tcp",protocol="5"} 12',
      'shoal_connections_open 4',
      'shoal_sessions_offline 3',
      'shoal_shared_subscription_groups 2',
      'shoal_connect_claims_running 2',
      'shoal_connect_claims_queued 5',
      'shoal_publish_received_total{qos="1"} 150',
      'shoal_publish_received_bytes_total{qos="2"} 6000',
      'shoal_publish_sent_total{qos="0"} 3000',
      'shoal_publish_sent_bytes_total{qos="1"} 12000',
      'shoal_rate_limited_total{limit="connect_rate"} 7',
      'shoal_takeovers_total 1',
      'shoal_draining 0',
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
    // Known reasons are always exported, 0 until one happens.
    expect(text.split('\n')).toContain('shoal_messages_dropped_total{reason="queue_full"} 0');
    expect(scrapes).toBe(2);
  });

  it('answers 404 elsewhere and 405 to other methods', async () => {
    expect((await fetch(`${base}/nothing-here`)).status).toBe(404);
    // Without a status provider and an admin API, / and /api/v1/ are not served either.
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/api/v1/nodes`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });
});
