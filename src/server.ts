/**
 * The composition root: builds the broker, the listeners and the observability endpoint from a
 * validated Config, starts them in order and stops them in reverse. The only module that knows
 * every part; each part knows only the narrow interfaces it is handed.
 *
 * Start: HTTP first (so /healthz answers and /readyz says 503 while starting), then the broker,
 * then each MQTT listener whose port is not 0; ready once all are up.
 * Close (the drain): not ready (then `drain.notReadyDelayMs` for load balancers to notice), stop
 * accepting, disconnect clients at `drain.ratePerSecond` (bounded by shutdownTimeoutMs), HTTP last.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { createAuth } from './auth/compose.js';
import type { AuthHooks } from './auth/types.js';
import { openLocalNode } from './backend/disk/local-node.js';
import { standaloneNode } from './backend/memory/cluster-hub.js';
import { RedisClusterBackend } from './backend/redis/backend.js';
import { parseRedisUrl } from './backend/redis/connect.js';
import { Keys } from './backend/redis/keys.js';
import { RedisQuotaStore } from './backend/redis/quota-store.js';
import { Broker, type BrokerDeps } from './broker/broker.js';
import type { DrainOptions } from './broker/drain.js';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config/schema.js';
import { readTlsCredentials } from './config/tls.js';
import { TlsRotation } from './config/tls-rotation.js';
import { acceptor, type ConnectionHost } from './connection/accept.js';
import type { ErrorCode } from './errors.js';
import type { Banning } from './extensions/bans.js';
import type { DelayedPublisher } from './extensions/delayed.js';
import { type LimitName, Limits } from './limits/limits.js';
import { AdminApi } from './observability/admin-api.js';
import { ClusterAdmin } from './observability/admin-cluster.js';
import type { AdminNode, BrokerAdmin } from './observability/admin-types.js';
import { ObservabilityServer } from './observability/http.js';
import { createLogger, type Logger } from './observability/logger.js';
import {
  createInstruments,
  createMetricsRegistry,
  registerBrokerMetrics,
  registerTlsMetrics,
} from './observability/metrics.js';
import type { BrokerStats } from './observability/stats.js';
import type { StatusView } from './observability/status-page.js';
import { AddressList } from './transport/address.js';
import type { ProxyProtocolOptions, ProxyRefusal } from './transport/proxied.js';
import { TcpListener } from './transport/tcp.js';
import { type TlsCredentials, TlsListener } from './transport/tls.js';
import type { Listener } from './transport/types.js';
import { WebSocketListener } from './transport/websocket.js';
import { VERSION } from './version.js';

/** What the server needs from the broker. */
export interface BrokerCore extends ConnectionHost {
  start(): void | Promise<void>;
  /** False while the broker cannot serve clients as it should (cluster: Redis unreachable). */
  readonly ready?: boolean;
  readonly stats: BrokerStats;
  /** The admin API's operations (absent: the admin API is not served). */
  readonly inspector?: BrokerAdmin;
  /** Banned clients (the admin API's bans); ChannelContext's part plus the list and its changes. */
  readonly banning: Banning;
  /** Delayed publish (the admin API's list and cancel); undefined when off. */
  readonly delayed: DelayedPublisher | undefined;
  /** Disconnects every client (at the drain's rate); resolves when all are closed. */
  shutdown(drain?: DrainOptions): Promise<void>;
}

export interface ServerDeps {
  /** Defaults to a pino logger at `config.logLevel` on stdout. */
  logger?: Logger;
  clock?: Clock;
  /** Builds the broker; tests substitute one. Defaults to the in-memory Broker. */
  createBroker?(deps: BrokerDeps): BrokerCore;
  /** Authentication and authorization hooks from code; each replaces the config-built one. */
  auth?: Partial<AuthHooks>;
}

/** Bound ports of the listeners that were started (a listener configured with port 0 is absent). */
export interface ServerPorts {
  mqtt?: number;
  ws?: number;
  tls?: number;
  wss?: number;
  http?: number;
}

export interface RunningServer {
  /** `config.nodeId`, or one made from the host name when that is null. */
  readonly nodeId: string;
  readonly ports: Readonly<ServerPorts>;
  /** True from the moment every listener is up until close() begins. */
  readonly ready: boolean;
  /** Rereads the password, ACL and key files and the TLS certificate (SIGHUP); open connections stay. */
  reload(): void;
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>;
  /** Settles once a shutdown (close(), or the admin API's drain) is complete. */
  readonly closed: Promise<void>;
}

/** A listener could not bind its port. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code = 'LISTEN_FAILED' satisfies ErrorCode;

  constructor(
    /** The config key of the port. */
    readonly key: string,
    address: string,
    cause: unknown,
  ) {
    super(`${key}: cannot listen on ${address}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, {
      cause,
    });
  }
}

interface NamedListener {
  name: keyof ServerPorts;
  /** Config key of its port, for errors. */
  key: string;
  port: number;
  listener: Listener;
}

export async function startServer(config: Config, deps: ServerDeps = {}): Promise<RunningServer> {
  const logger = deps.logger ?? createLogger(config.logLevel);
  const clock = deps.clock ?? systemClock;
  const credentials = needsTls(config) ? readTlsCredentials(config.tls) : undefined;
  // Shutdown, once: from close() (SIGTERM in the CLI) or the admin API's drain.
  let closing: Promise<void> | undefined;
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });
  const closeServer = (): Promise<void> => {
    closing ??= shutdown().finally(markClosed);
    return closing;
  };
  // Certificate rotation (SIGHUP, and the files' watch): the TLS and WSS listeners are added below.
  const rotation =
    credentials === undefined
      ? undefined
      : new TlsRotation({
          config: config.tls,
          clock,
          logger,
          initial: credentials,
          watch: config.tls.watchFiles,
        });
  const createBroker = deps.createBroker ?? ((d: BrokerDeps) => new Broker(d));
  const nodeId = config.nodeId ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
  const registry = config.httpPort === 0 ? undefined : createMetricsRegistry();
  const instruments = registry === undefined ? undefined : createInstruments(registry);
  const cluster =
    config.redis === null
      ? undefined
      : new RedisClusterBackend({
          url: config.redis,
          nodeId,
          clock,
          logger,
          heartbeatMs: config.cluster.heartbeatMs,
          livenessTimeoutMs: config.cluster.livenessTimeoutMs,
          prefix: config.cluster.keyPrefix,
          replicaAcks:
            config.cluster.replicaAcks === 0
              ? undefined
              : { replicas: config.cluster.replicaAcks, timeoutMs: config.cluster.replicaAckTimeoutMs },
          maxQueued: config.mqtt.maxQueuedMessages,
          inboxMaxLen: config.cluster.inboxMaxLength,
          partitions: config.cluster.partitions,
          instruments,
        });
  // A single node with a data dir keeps its state there (a cluster keeps it in Redis).
  const local =
    cluster === undefined && config.persistence.dir !== null
      ? await openLocalNode({
          dir: config.persistence.dir,
          sync: config.persistence.sync,
          clock,
          nodeId,
          maxQueued: config.mqtt.maxQueuedMessages,
          instruments,
        })
      : undefined;
  if (local !== undefined)
    logger.info({ event: 'persistence.opened', dir: local.journal.dir, sync: config.persistence.sync });
  else if (config.persistence.dir !== null)
    logger.warn(
      { event: 'persistence.ignored', dir: config.persistence.dir },
      'persistence.dir is not used in cluster mode: the cluster keeps its state in Redis',
    );
  const limits = new Limits(config.limits, clock);
  const auth = createAuth(config.auth, { clock, logger, overrides: deps.auth });
  // limits.user.* in a cluster: counted through Redis on a connection of its own (only when on).
  const userQuotas = config.limits.user.maxConnections > 0 || config.limits.user.messagesPerMinute > 0;
  let quotas: RedisQuotaStore | undefined;
  if (config.redis !== null && userQuotas) {
    const client = parseRedisUrl(config.redis).create();
    client.on('error', () => undefined);
    quotas = new RedisQuotaStore({
      client,
      keys: new Keys(config.cluster.keyPrefix),
      clock,
      connectionTtlMs: Math.max(config.cluster.livenessTimeoutMs, 3000),
      ownsClient: true,
      onError: (err) => logger.warn({ event: 'quota.flush_failed', err: String(err) }),
    });
  }
  const broker = createBroker({
    auth: auth.hooks,
    options: config.mqtt,
    clock,
    logger,
    version: VERSION,
    // A single node keeps its state in a memory hub of its own, or on disk with a data dir.
    cluster: cluster ?? local?.backend ?? standaloneNode(clock, nodeId, config.mqtt.maxQueuedMessages),
    instruments,
    limits,
    quotas,
    topicRewrite: config.topicRewrite,
    autoSubscribe: config.autoSubscribe,
    flapping: config.flapping,
    delayed: config.delayed,
  });

  let ready = false;
  const startedAt = clock.now();
  const ports: ServerPorts = {};
  const { host } = config;
  let http: ObservabilityServer | undefined;
  const listeners: Listener[] = [];

  const bind = async (
    name: keyof ServerPorts,
    key: string,
    port: number,
    server: Listener | ObservabilityServer,
  ) => {
    try {
      ports[name] = await server.listen();
    } catch (err) {
      throw new ListenError(key, `${host}:${port}`, err);
    }
    logger.info({ event: 'listener.started', listener: name, kind: server.kind, host, port: ports[name] });
  };

  try {
    if (registry !== undefined) {
      const isReady = () => ready && broker.ready !== false;
      const mode = cluster === undefined ? 'single' : 'cluster';
      registerBrokerMetrics(registry, () => broker.stats, {
        ready: isReady,
        version: VERSION,
        mode,
        nodeId,
        cluster,
      });
      if (rotation !== undefined) registerTlsMetrics(registry, rotation);
      const nodes = async (): Promise<AdminNode[]> =>
        cluster === undefined
          ? [{ nodeId, self: true, lastSeenMs: null }]
          : (await cluster.liveNodes()).map((n) => ({ ...n, self: n.nodeId === nodeId }));
      const inspector = broker.inspector;
      // The admin API across the cluster: a client's node found through Redis, asked over the control channel.
      const clusterAdmin =
        inspector === undefined
          ? undefined
          : new ClusterAdmin({
              nodeId,
              local: inspector,
              logLevel: () => logger.level,
              setLogLevel: (level) => {
                logger.level = level;
              },
              cluster:
                cluster === undefined
                  ? undefined
                  : {
                      ownerOf: (clientId) => cluster.ownerOf(clientId),
                      call: (node, request) => cluster.adminCall(node, request),
                      nodesMatching: (topic) => cluster.nodesMatching(topic),
                      liveNodes: async () => (await cluster.liveNodes()).map((n) => n.nodeId),
                    },
            });
      if (clusterAdmin !== undefined) cluster?.serveAdmin((request) => clusterAdmin.serve(request));
      const admin =
        config.admin.enabled && inspector !== undefined && clusterAdmin !== undefined
          ? new AdminApi({
              broker: inspector,
              cluster: clusterAdmin,
              nodes,
              token: config.admin.token,
              readOnlyToken: config.admin.readOnlyToken,
              maxBodyBytes: config.mqtt.maxPacketSizeBytes + 64 * 1024,
              logger,
              logLevel: () => logger.level,
              drain: () => void closeServer(),
              banning: broker.banning,
              delayed: broker.delayed,
            })
          : undefined;
      if (admin !== undefined && config.admin.token === null && config.admin.readOnlyToken === null)
        logger.warn(
          { event: 'admin.loopback_only' },
          'admin.token is not set: the admin API answers loopback only',
        );
      const status = async (): Promise<StatusView> => {
        const s = broker.stats;
        const live = await nodes().catch(() => [{ nodeId, self: true, lastSeenMs: null }]);
        return {
          nodeId,
          version: VERSION,
          mode,
          ready: isReady(),
          draining: s.draining,
          uptimeSeconds: Math.floor((clock.now() - startedAt) / 1000),
          nodes: live.map((n) => n.nodeId).sort(),
          figures: [
            ['clients connected', s.clientsConnected],
            ['sessions (offline)', s.sessionsOffline],
            ['subscriptions', s.subscriptions],
            ['retained messages', s.retained],
            ['messages received', s.messagesReceived],
            ['messages sent', s.messagesSent],
          ],
        };
      };
      http = new ObservabilityServer({
        host,
        port: config.httpPort,
        registry,
        ready: isReady,
        logger,
        admin,
        status,
      });
      await bind('http', 'httpPort', config.httpPort, http);
    }
    await broker.start();
    for (const { name, key, port, listener } of createListeners(config, credentials, broker, logger, {
      limits,
      clock,
    })) {
      await bind(name, key, port, listener);
      listeners.push(listener);
      if (name === 'tls' || name === 'wss') rotation?.add(listener as TlsListener | WebSocketListener);
    }
  } catch (err) {
    // Undo what started; clients of a listener that did start are disconnected by the shutdown.
    auth.close();
    rotation?.close();
    await Promise.all(listeners.map((l) => l.close()));
    await broker.shutdown();
    await local?.close();
    await http?.close();
    throw err;
  }

  ready = true;
  logger.info({ event: 'server.ready', version: VERSION, nodeId, ports }, 'shoal ready');

  const shutdown = async () => {
    ready = false;
    const { drain } = config;
    logger.info({
      event: 'server.stopping',
      timeoutMs: config.shutdownTimeoutMs,
      notReadyDelayMs: drain.notReadyDelayMs,
      ratePerSecond: drain.ratePerSecond,
    });
    // /readyz answers 503 from now; load balancers stop sending new clients before the listeners go.
    if (drain.notReadyDelayMs > 0)
      await new Promise((r) => clock.setTimeout(() => r(undefined), drain.notReadyDelayMs));
    await Promise.all(listeners.map((l) => l.close()));
    const drained = broker.shutdown({
      ratePerSecond: drain.ratePerSecond,
      serverReference: drain.serverReference,
      // The rest go at once in time for the connections' close grace and the cluster's goodbye.
      deadlineMs: Math.max(0, config.shutdownTimeoutMs - DRAIN_MARGIN_MS),
    });
    const done = await within(drained, config.shutdownTimeoutMs, clock).catch((err: unknown) => {
      logger.error({ event: 'server.shutdown_error', err }, 'broker shutdown failed');
      return true;
    });
    if (!done) logger.warn({ event: 'server.shutdown_timeout', timeoutMs: config.shutdownTimeoutMs });
    await local?.close().catch((err: unknown) => logger.error({ event: 'persistence.close_failed', err }));
    auth.close();
    rotation?.close();
    await http?.close();
    logger.info({ event: 'server.stopped' });
  };
  return {
    nodeId,
    ports: Object.freeze({ ...ports }),
    get ready() {
      return ready;
    },
    reload() {
      logger.info({ event: 'server.reload' });
      auth.reload();
      rotation?.reload();
    },
    close: closeServer,
    closed,
  };
}

function createListeners(
  config: Config,
  credentials: TlsCredentials | undefined,
  broker: BrokerCore,
  logger: Logger,
  guard: { limits: Limits; clock: Clock },
): NamedListener[] {
  const host = config.host;
  const onConnection = acceptor(broker);
  const keepAliveMs = config.limits.tcpKeepAliveSeconds * 1000;
  const proxyProtocol = proxyProtocolOptions(config, guard, logger);
  const wsTrustedProxies =
    config.wsTrustedProxies.length > 0 ? new AddressList(config.wsTrustedProxies) : undefined;
  const onError = (kind: string) => (err: Error) => logger.error({ event: 'listener.error', kind, err });
  const onHandshakeError = (kind: string) => (err: Error, remote: string | undefined) =>
    logger.debug({ event: 'listener.handshake_failed', kind, remote, reason: err.message });
  const ws = (port: number, tlsCredentials?: TlsCredentials) =>
    new WebSocketListener({
      host,
      port,
      path: config.wsPath,
      // One WebSocket message normally carries one MQTT packet.
      maxPayloadBytes: config.mqtt.maxPacketSizeBytes,
      credentials: tlsCredentials,
      onConnection,
      onError: onError(tlsCredentials ? 'wss' : 'ws'),
      onHandshakeError: onHandshakeError('wss'),
      trustedProxies: wsTrustedProxies,
      keepAliveMs,
    });

  const out: NamedListener[] = [];
  if (config.port !== 0) {
    out.push({
      name: 'mqtt',
      key: 'port',
      port: config.port,
      listener: new TcpListener({
        host,
        port: config.port,
        onConnection,
        onError: onError('tcp'),
        proxyProtocol: config.proxyProtocol.tcp ? proxyProtocol : undefined,
        keepAliveMs,
      }),
    });
  }
  if (config.wsPort !== 0)
    out.push({ name: 'ws', key: 'wsPort', port: config.wsPort, listener: ws(config.wsPort) });
  if (credentials !== undefined && config.tls.port !== 0) {
    out.push({
      name: 'tls',
      key: 'tls.port',
      port: config.tls.port,
      listener: new TlsListener({
        host,
        port: config.tls.port,
        credentials,
        onConnection,
        onError: onError('tls'),
        onHandshakeError: onHandshakeError('tls'),
        proxyProtocol: config.proxyProtocol.tls ? proxyProtocol : undefined,
        keepAliveMs,
      }),
    });
  }
  if (credentials !== undefined && config.tls.wssPort !== 0) {
    out.push({
      name: 'wss',
      key: 'tls.wssPort',
      port: config.tls.wssPort,
      listener: ws(config.tls.wssPort, credentials),
    });
  }
  return out;
}

/** A rate-limited drain ends this long before shutdownTimeoutMs: the rest are disconnected at once. */
const DRAIN_MARGIN_MS = 2500;

/**
 * PROXY protocol settings shared by the TCP and TLS listeners. Refusals are counted as limit hits;
 * the first of each kind and every 1000th after it is logged (a scan cannot flood the log).
 */
function proxyProtocolOptions(
  config: Config,
  guard: { limits: Limits; clock: Clock },
  logger: Logger,
): ProxyProtocolOptions {
  const limitOf: Record<ProxyRefusal, LimitName> = {
    untrusted: 'proxy_untrusted',
    invalid: 'proxy_header',
    timeout: 'proxy_header',
  };
  const seen: Record<ProxyRefusal, number> = { untrusted: 0, invalid: 0, timeout: 0 };
  return {
    trusted: new AddressList(config.proxyProtocol.trustedProxies),
    headerTimeoutMs: config.proxyProtocol.headerTimeoutMs,
    clock: guard.clock,
    onRefused(reason, remote, detail) {
      guard.limits.hit(limitOf[reason]);
      const n = ++seen[reason];
      if (n === 1 || n % 1000 === 0)
        logger.warn({ event: 'listener.proxy_refused', reason, remote, detail, total: n });
    },
  };
}

function needsTls(config: Config): boolean {
  return config.tls.port !== 0 || config.tls.wssPort !== 0;
}

/** Resolves true when `work` settles within `ms`, false when the time runs out first. */
function within(work: Promise<void>, ms: number, clock: Clock): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(() => resolve(false), ms);
    work.then(
      () => {
        timer.cancel();
        resolve(true);
      },
      (err: unknown) => {
        timer.cancel();
        reject(err);
      },
    );
  });
}
