/**
 * Every Prometheus metric Shoal exports, declared here with its help text.
 *
 * Broker metrics are collect-on-scrape: each reads the broker's stats object when /metrics is
 * requested, so counting costs nothing per message. Process metrics (CPU, memory, event loop, GC)
 * come from prom-client's default collectors with the same `shoal_` prefix.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { BrokerStats } from './stats.js';

export const METRIC_PREFIX = 'shoal_';

/** A registry holding the default process metrics. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

type NumericStat = Exclude<keyof BrokerStats, 'dropped'>;

const GAUGES: ReadonlyArray<[name: string, help: string, stat: NumericStat]> = [
  ['shoal_clients_connected', 'Clients currently connected to this node.', 'clientsConnected'],
  ['shoal_subscriptions', 'Subscriptions currently held on this node.', 'subscriptions'],
  ['shoal_retained_messages', 'Retained messages currently stored.', 'retained'],
  ['shoal_sessions', 'Sessions held on this node, connected or not.', 'sessions'],
];

const COUNTERS: ReadonlyArray<[name: string, help: string, stat: NumericStat]> = [
  ['shoal_clients_total', 'Client connections accepted since start.', 'clientsTotal'],
  ['shoal_messages_received_total', 'PUBLISH packets received from clients.', 'messagesReceived'],
  ['shoal_messages_sent_total', 'PUBLISH packets sent to clients.', 'messagesSent'],
  ['shoal_bytes_received_total', 'Bytes received from clients.', 'bytesReceived'],
  ['shoal_bytes_sent_total', 'Bytes sent to clients.', 'bytesSent'],
  [
    'shoal_cluster_messages_sent_total',
    'Messages sent to other nodes (one per target node).',
    'clusterMessagesSent',
  ],
  [
    'shoal_cluster_batches_sent_total',
    'Batches (Redis writes) the cluster messages went in.',
    'clusterBatchesSent',
  ],
  ['shoal_cluster_messages_received_total', 'Messages received from other nodes.', 'clusterMessagesReceived'],
];

const DROPPED = {
  name: 'shoal_messages_dropped_total',
  help: 'Messages dropped instead of delivered, by reason (for example a slow client or a full queue).',
};

/**
 * Registers the broker metrics on `registry`, each read from `stats()` at scrape time.
 * One scrape reads `stats()` once: the snapshot is kept until the end of the current microtask
 * run, which spans every metric's collect (prom-client calls them in one synchronous loop).
 */
export function registerBrokerMetrics(registry: Registry, stats: () => BrokerStats): void {
  let snapshot: BrokerStats | undefined;
  const read = (): BrokerStats => {
    if (snapshot === undefined) {
      snapshot = stats();
      queueMicrotask(() => {
        snapshot = undefined;
      });
    }
    return snapshot;
  };

  for (const [name, help, stat] of GAUGES) {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read()[stat]);
      },
    });
  }
  // Counters mirror monotonic broker totals: reset, then add the current total.
  for (const [name, help, stat] of COUNTERS) {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read()[stat]);
      },
    });
  }
  new Counter({
    ...DROPPED,
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, count] of Object.entries(read().dropped)) this.inc({ reason }, count);
    },
  });
}
