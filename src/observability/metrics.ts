/**
 * Every Prometheus metric Shoal exports, declared here with its help text (docs/metrics.md lists
 * them; test/unit/deploy checks the dashboard and alert rules against a live /metrics).
 *
 * Broker metrics are collect-on-scrape: each reads the broker's stats object when /metrics is
 * requested, so counting costs nothing per message. Distributions (Redis latency, batch sizes, inbox
 * lag, takeover time) are histograms fed through the Instruments interface. Process metrics (CPU,
 * memory, event-loop lag, heap, GC) come from prom-client's default collectors with the same prefix.
 *
 * Labels are bounded sets: listener (tcp tls ws wss), protocol (3 4 5), qos (0 1 2), drop reason,
 * limit name, Redis command name. Never a client id or a topic.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Instruments } from './instruments.js';
import type { BrokerStats } from './stats.js';

export const METRIC_PREFIX = 'shoal_';

/** A registry holding the default process metrics. */
export function createMetricsRegistry(): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX });
  return registry;
}

type NumericStat = {
  [K in keyof BrokerStats]: BrokerStats[K] extends number ? K : never;
}[keyof BrokerStats];

const GAUGES: ReadonlyArray<[name: string, help: string, stat: NumericStat]> = [
  ['shoal_clients_connected', 'Clients currently connected to this node.', 'clientsConnected'],
  ['shoal_subscriptions', 'Subscriptions currently held on this node.', 'subscriptions'],
  ['shoal_retained_messages', 'Retained messages currently stored.', 'retained'],
  ['shoal_sessions', 'Sessions held on this node, connected or not.', 'sessions'],
  [
    'shoal_sessions_offline',
    'Persistent sessions held on this node whose client is not connected.',
    'sessionsOffline',
  ],
  [
    'shoal_connections_open',
    'Network connections open on this node, including those that have not sent CONNECT yet.',
    'connectionsOpen',
  ],
  [
    'shoal_connect_claims_running',
    'CONNECTs whose claim of their client id runs now (at most limits.maxConcurrentClaims).',
    'claimsRunning',
  ],
  [
    'shoal_connect_claims_queued',
    'CONNECTs waiting for a claim slot (at most limits.maxQueuedClaims; past it CONNACK 0x89).',
    'claimsQueued',
  ],
  [
    'shoal_shared_subscription_groups',
    'Shared subscriptions (group and filter) with at least one member on this node.',
    'sharedGroups',
  ],
  [
    'shoal_inflight_messages',
    'QoS 1/2 messages sent to clients of this node and not yet acknowledged.',
    'inflight',
  ],
  ['shoal_bans', 'Bans in force (cluster-wide: every node sees the same).', 'bans'],
  [
    'shoal_delayed_messages',
    "Delayed messages stored ($delayed/<seconds>/<topic>; cluster-wide, as of this node's last look).",
    'delayedStored',
  ],
  [
    'shoal_queued_messages',
    "Messages queued on this node for its clients' sessions (a cluster's persistent sessions queue in Redis).",
    'queued',
  ],
  [
    'shoal_cluster_routes',
    "Routes of other nodes in this node's replica of the cluster route table (0 on a single node).",
    'clusterRoutes',
  ],
  [
    'shoal_cluster_session_routes',
    "Persistent sessions' subscriptions in this node's replica of the cluster route table (0 on a single node).",
    'clusterSessionRoutes',
  ],
];

const COUNTERS: ReadonlyArray<[name: string, help: string, stat: NumericStat]> = [
  ['shoal_clients_total', 'Client connections accepted since start.', 'clientsTotal'],
  ['shoal_messages_received_total', 'PUBLISH packets received from clients.', 'messagesReceived'],
  ['shoal_messages_sent_total', 'PUBLISH packets sent to clients.', 'messagesSent'],
  ['shoal_bytes_received_total', 'Bytes received from clients.', 'bytesReceived'],
  ['shoal_bytes_sent_total', 'Bytes sent to clients.', 'bytesSent'],
  [
    'shoal_auth_failures_total',
    'CONNECTs refused for bad credentials or lack of authorization (CONNACK 0x86, 0x87, 0x8C).',
    'authFailures',
  ],
  [
    'shoal_sessions_created_total',
    'Sessions opened on this node that did not exist before.',
    'sessionsCreated',
  ],
  [
    'shoal_sessions_resumed_total',
    'Sessions resumed on this node (CONNACK Session Present 1).',
    'sessionsResumed',
  ],
  [
    'shoal_sessions_discarded_total',
    'Stored sessions a Clean Start CONNECT on this node ended.',
    'sessionsDiscarded',
  ],
  [
    'shoal_sessions_expired_total',
    "Offline sessions whose expiry passed, as this node's store saw them (cluster mode: those its sweep removed; the sum over nodes is the cluster's).",
    'sessionsExpired',
  ],
  [
    'shoal_auto_subscriptions_total',
    'Subscriptions made on connect by autoSubscribe rules.',
    'autoSubscriptions',
  ],
  ['shoal_connects_banned_total', 'CONNECTs refused for a ban (CONNACK 0x8A; 3.x: 5).', 'bannedConnects'],
  ['shoal_delayed_published_total', 'Delayed messages this node published when due.', 'delayedPublished'],
  ['shoal_flapping_bans_total', 'Client ids this node banned for flapping (flapping.*).', 'flappingBans'],
  [
    'shoal_takeovers_total',
    'Sessions taken over by a new connection with the same client id (the old one got 0x8E).',
    'takeovers',
  ],
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

/** Counters by QoS: [name, help, stat (an array indexed by QoS)]. */
const BY_QOS: ReadonlyArray<
  [name: string, help: string, stat: 'receivedByQos' | 'receivedBytesByQos' | 'sentByQos' | 'sentBytesByQos']
> = [
  ['shoal_publish_received_total', 'PUBLISH packets received from clients, by QoS.', 'receivedByQos'],
  [
    'shoal_publish_received_bytes_total',
    'Payload bytes of PUBLISH packets received from clients, by QoS.',
    'receivedBytesByQos',
  ],
  ['shoal_publish_sent_total', 'PUBLISH packets sent to clients, by QoS.', 'sentByQos'],
  [
    'shoal_publish_sent_bytes_total',
    'Payload bytes of PUBLISH packets sent to clients, by QoS.',
    'sentBytesByQos',
  ],
];

/** Drop reasons always exported (0 until one happens), so rules and dashboards find the series. */
export const DROP_REASONS = [
  'queue_full',
  'expired',
  'slow_consumer',
  'no_subscriber',
  'offline_qos0',
  'too_large',
] as const;

/** What the cluster says, read at scrape time (cluster mode only). */
export interface ClusterMetricsSource {
  /** Live nodes, this one included (a Redis read: bounded by a timeout at scrape). */
  liveNodes(): Promise<unknown[]>;
  /** Redis' memory in use and the persistent sessions offline, cluster-wide (a Redis read). */
  redisStats?(): Promise<{ usedMemoryBytes: number; offlineSessions: number }>;
}

export interface NodeMetricsSource {
  /** True while /readyz answers 200. */
  ready(): boolean;
  version: string;
  /** 'single' or 'cluster'. */
  mode: string;
  /** This node's id (cluster.nodeId, or made from the host name): dashboards name nodes by it. */
  nodeId: string;
  cluster?: ClusterMetricsSource;
}

/** A scrape waits at most this long for the cluster's node list (Redis may be away). */
const CLUSTER_READ_TIMEOUT_MS = 1000;

/**
 * Registers the broker metrics on `registry`, each read from `stats()` at scrape time.
 * One scrape reads `stats()` once: the snapshot is kept until the end of the current microtask
 * run, which spans every metric's collect (prom-client calls them in one synchronous loop).
 */
export function registerBrokerMetrics(
  registry: Registry,
  stats: () => BrokerStats,
  node?: NodeMetricsSource,
): void {
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
  const registers = [registry];

  for (const [name, help, stat] of GAUGES) {
    new Gauge({
      name,
      help,
      registers,
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
      registers,
      collect() {
        this.reset();
        this.inc(read()[stat]);
      },
    });
  }
  for (const [name, help, stat] of BY_QOS) {
    new Counter({
      name,
      help,
      labelNames: ['qos'],
      registers,
      collect() {
        this.reset();
        read()[stat].forEach((n, qos) => {
          this.inc({ qos: String(qos) }, n);
        });
      },
    });
  }
  new Counter({
    name: 'shoal_messages_dropped_total',
    help: 'Messages dropped instead of delivered, by reason: queue_full, expired, slow_consumer, no_subscriber, offline_qos0, too_large.',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      const dropped = read().dropped;
      for (const reason of DROP_REASONS) this.inc({ reason }, dropped[reason] ?? 0);
      for (const [reason, count] of Object.entries(dropped))
        if (!(DROP_REASONS as readonly string[]).includes(reason)) this.inc({ reason }, count);
    },
  });
  new Counter({
    name: 'shoal_rate_limited_total',
    help: 'Requests refused or delayed by a limit, by limit name.',
    labelNames: ['limit'],
    registers,
    collect() {
      this.reset();
      for (const [limit, count] of Object.entries(read().rateLimited)) this.inc({ limit }, count);
    },
  });
  new Gauge({
    name: 'shoal_connections',
    help: 'Clients currently connected to this node, by listener and MQTT protocol level (3, 4, 5).',
    labelNames: ['listener', 'protocol'],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of Object.entries(read().connectedBy)) this.set(labelsOf(key), n);
    },
  });
  new Counter({
    name: 'shoal_connections_total',
    help: 'CONNECTs accepted since start, by listener and MQTT protocol level (3, 4, 5).',
    labelNames: ['listener', 'protocol'],
    registers,
    collect() {
      this.reset();
      for (const [key, n] of Object.entries(read().connectsBy)) this.inc(labelsOf(key), n);
    },
  });
  // Counted by a key with one or two label values (`5 0x86`, `publish allow`): bounded sets.
  const BY_KEY: ReadonlyArray<
    [
      name: string,
      help: string,
      labels: string[],
      stat: 'connacks' | 'disconnects' | 'authz' | 'packetsReceived' | 'packetsSent' | 'rewrites',
    ]
  > = [
    [
      'shoal_connacks_total',
      'CONNACKs sent, by MQTT protocol level and the reason or return code on the wire (0x00 accepted; 3.x clients get 3.1.1 return codes).',
      ['protocol', 'code'],
      'connacks',
    ],
    [
      'shoal_disconnects_total',
      "Connected clients' connections that ended, by reason: client_disconnect, connection_lost, protocol_error, or the server's DISCONNECT reason (keep_alive_timeout, session_taken_over, administrative_action, server_shutting_down...).",
      ['reason'],
      'disconnects',
    ],
    [
      'shoal_authorizations_total',
      'Authorization answers for PUBLISH and SUBSCRIBE (ACL file, hooks), by action and result (allow, deny).',
      ['action', 'result'],
      'authz',
    ],
    [
      'shoal_packets_received_total',
      'MQTT packets received from clients, by type.',
      ['type'],
      'packetsReceived',
    ],
    ['shoal_packets_sent_total', 'MQTT packets sent to clients, by type.', ['type'], 'packetsSent'],
    [
      'shoal_topic_rewrites_total',
      'Topics rewritten by topicRewrite rules, by kind: publish (PUBLISH topics), subscribe (SUBSCRIBE and UNSUBSCRIBE filters).',
      ['kind'],
      'rewrites',
    ],
  ];
  for (const [name, help, labelNames, stat] of BY_KEY) {
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const [key, n] of Object.entries(read()[stat])) {
          const values = labelNames.length === 1 ? [key] : key.split(' ');
          this.inc(Object.fromEntries(labelNames.map((l, i) => [l, values[i] ?? ''])), n);
        }
      },
    });
  }
  new Gauge({
    name: 'shoal_draining',
    help: '1 while this node drains its clients (SIGTERM), else 0.',
    registers,
    collect() {
      this.set(read().draining ? 1 : 0);
    },
  });
  if (node === undefined) return;

  new Gauge({
    name: 'shoal_ready',
    help: '1 while this node takes clients (/readyz 200), else 0.',
    registers,
    collect() {
      this.set(node.ready() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'shoal_info',
    help: 'Always 1; the labels say the version, the mode (single or cluster) and the node id (join it to name nodes in legends).',
    labelNames: ['version', 'mode', 'node_id'],
    registers,
    collect() {
      this.reset();
      this.set({ version: node.version, mode: node.mode, node_id: node.nodeId }, 1);
    },
  });
  let lastLive = node.cluster === undefined ? 1 : 0;
  new Gauge({
    name: 'shoal_cluster_nodes',
    help: 'Live cluster nodes as the cluster sees them (heartbeat within the liveness timeout); 1 on a single node.',
    registers,
    async collect() {
      const cluster = node.cluster;
      if (cluster !== undefined) {
        // Redis away: the read would wait for the reconnect; report the last known value instead.
        const live = await withTimeout(cluster.liveNodes(), CLUSTER_READ_TIMEOUT_MS).catch(() => undefined);
        if (live !== undefined) lastLive = live.length;
      }
      this.set(lastLive);
    },
  });
  const redisStats = node.cluster?.redisStats?.bind(node.cluster);
  if (redisStats === undefined) return;
  // One Redis read per scrape for both gauges (the first collect reads, the second takes its answer).
  let reading: Promise<{ usedMemoryBytes: number; offlineSessions: number } | undefined> | undefined;
  const readRedis = () => {
    reading ??= withTimeout(redisStats(), CLUSTER_READ_TIMEOUT_MS)
      .catch(() => undefined)
      .finally(() => setImmediate(() => (reading = undefined)));
    return reading;
  };
  let last = { usedMemoryBytes: 0, offlineSessions: 0 };
  new Gauge({
    name: 'shoal_redis_used_memory_bytes',
    help: "Redis' used_memory (summed over the masters of a Redis Cluster): the cluster's data set, with whatever else shares that Redis.",
    registers,
    async collect() {
      last = (await readRedis()) ?? last;
      this.set(last.usedMemoryBytes);
    },
  });
  new Gauge({
    name: 'shoal_cluster_sessions_offline',
    help: 'Persistent sessions offline in the whole cluster (those with an expiry, as indexed for the route sweep; one that reconnected counts until its former expiry).',
    registers,
    async collect() {
      last = (await readRedis()) ?? last;
      this.set(last.offlineSessions);
    },
  });
}

/** What the TLS metrics read (config/tls-rotation.ts). */
export interface TlsMetricsSource {
  /** When the served certificate expires, ms since the epoch (undefined: unreadable). */
  readonly expiresAt: number | undefined;
  readonly reloads: { readonly ok: number; readonly failed: number };
}

/** The served certificate's expiry and the rotations since start (with a TLS or WSS listener). */
export function registerTlsMetrics(registry: Registry, tls: TlsMetricsSource): void {
  const registers = [registry];
  new Gauge({
    name: 'shoal_tls_certificate_expiry_timestamp_seconds',
    help: 'When the certificate served on the TLS and WSS listeners expires (Unix time, seconds): alert well before it.',
    registers,
    collect() {
      if (tls.expiresAt === undefined) this.reset();
      else this.set(tls.expiresAt / 1000);
    },
  });
  new Counter({
    name: 'shoal_tls_reloads_total',
    help: 'Certificate reloads since start (SIGHUP or a change of the files), by result: ok (served from then on) or failed (kept the previous one).',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset();
      this.inc({ result: 'ok' }, tls.reloads.ok);
      this.inc({ result: 'failed' }, tls.reloads.failed);
    },
  });
}

/** The histograms behind Instruments, registered on `registry`. */
export function createInstruments(registry: Registry): Instruments {
  const registers = [registry];
  const redisLatency = new Histogram({
    name: 'shoal_redis_command_duration_seconds',
    help: 'Redis command latency on the node command connection, by command (blocking stream reads excluded).',
    labelNames: ['command'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const redisErrors = new Counter({
    name: 'shoal_redis_command_errors_total',
    help: 'Redis commands that failed, by command.',
    labelNames: ['command'],
    registers,
  });
  const batches = new Histogram({
    name: 'shoal_cluster_batch_size',
    help: 'Messages per batch sent to another node: kind durable (inbox stream, QoS >= 1) or volatile (pub/sub, QoS 0).',
    labelNames: ['kind'],
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 512],
    registers,
  });
  const inboxLag = new Histogram({
    name: 'shoal_cluster_inbox_lag_seconds',
    help: 'Age of an inbox batch (QoS >= 1 from other nodes) when this node read it.',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers,
  });
  const takeover = new Histogram({
    name: 'shoal_takeover_duration_seconds',
    help: 'Time to take a session over from the connection holding it (on another node: the release round trip).',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers,
  });
  const commitSeconds = new Histogram({
    name: 'shoal_persistence_commit_duration_seconds',
    help: 'A single node with persistence.dir: time to write and fsync one commit (acknowledgements wait for it).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  const commitWrites = new Histogram({
    name: 'shoal_persistence_commit_writes',
    help: 'A single node with persistence.dir: changed records per commit (how many changes share one fsync).',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000],
    registers,
  });
  const commitErrors = new Counter({
    name: 'shoal_persistence_commit_errors_total',
    help: 'A single node with persistence.dir: commits that failed (disk full, I/O error); after one, every write is refused until a restart.',
    registers,
  });
  for (const kind of ['durable', 'volatile']) batches.zero({ kind });
  // These run inside the data path (Redis replies, inbox reads, batch sends): a measurement must
  // never throw there, and prom-client throws on a non-finite value.
  const ok = (v: number) => Number.isFinite(v);
  return {
    redisCommand(command, seconds, failed) {
      if (ok(seconds)) redisLatency.observe({ command }, seconds);
      if (failed) redisErrors.inc({ command });
    },
    clusterBatch(durable, envelopes) {
      if (ok(envelopes)) batches.observe({ kind: durable ? 'durable' : 'volatile' }, envelopes);
    },
    inboxLag(seconds) {
      if (ok(seconds)) inboxLag.observe(Math.max(0, seconds));
    },
    takeover(seconds) {
      if (ok(seconds)) takeover.observe(seconds);
    },
    persistenceCommit(seconds, writes, failed) {
      if (failed) commitErrors.inc();
      else if (ok(seconds) && ok(writes)) {
        commitSeconds.observe(seconds);
        commitWrites.observe(writes);
      }
    },
  };
}

function labelsOf(key: string): { listener: string; protocol: string } {
  const space = key.indexOf(' ');
  return { listener: key.slice(0, space), protocol: key.slice(space + 1) };
}

function withTimeout<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    work,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timeout')), ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}
