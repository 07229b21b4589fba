/**
 * The composition root: builds the broker, the listeners and the observability endpoint from a
 * validated Config, starts them in order and stops them in reverse. The only module that knows
 * every part; each part knows only the narrow interfaces it is handed.
 *
 * Start: HTTP first (so /healthz answers and /readyz says 503 while starting), then the broker,
 * then each MQTT listener whose port is not 0; ready once all are up.
 * Close: not ready, stop accepting, disconnect every client (bounded by shutdownTimeoutMs), HTTP last.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { RedisClusterBackend } from './backend/redis/backend.js';
import { Broker, type BrokerDeps } from './broker/broker.js';
import { type Clock, systemClock } from './clock.js';
import type { Config } from './config/schema.js';
import { readTlsCredentials } from './config/tls.js';
import { ObservabilityServer } from './observability/http.js';
import { createLogger, type Logger } from './observability/logger.js';
import { createMetricsRegistry, registerBrokerMetrics } from './observability/metrics.js';
import type { BrokerStats } from './observability/stats.js';
import { TcpListener } from './transport/tcp.js';
import { type TlsCredentials, TlsListener } from './transport/tls.js';
import type { Listener, Transport } from './transport/types.js';
import { WebSocketListener } from './transport/websocket.js';
import { VERSION } from './version.js';

/** What the server needs from the broker. */
export interface BrokerCore {
  accept(transport: Transport): void;
  start(): void | Promise<void>;
  /** False while the broker cannot serve clients as it should (cluster: Redis unreachable). */
  readonly ready?: boolean;
  readonly stats: BrokerStats;
  /** Disconnects every client; resolves when all are closed. */
  shutdown(): Promise<void>;
}

export interface ServerDeps {
  /** Defaults to a pino logger at `config.logLevel` on stdout. */
  logger?: Logger;
  clock?: Clock;
  /** Builds the broker; tests substitute one. Defaults to the in-memory Broker. */
  createBroker?(deps: BrokerDeps): BrokerCore;
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
  /** Graceful shutdown; idempotent. */
  close(): Promise<void>;
}

/** A listener could not bind its port. */
export class ListenError extends Error {
  override readonly name = 'ListenError';
  readonly code = 'LISTEN_FAILED';

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
  const createBroker = deps.createBroker ?? ((d: BrokerDeps) => new Broker(d));
  const nodeId = config.nodeId ?? `${hostname()}-${randomBytes(3).toString('hex')}`;
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
        });
  const broker = createBroker({ options: config.mqtt, clock, logger, version: VERSION, cluster });

  let ready = false;
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
    if (config.httpPort !== 0) {
      const registry = createMetricsRegistry();
      registerBrokerMetrics(registry, () => broker.stats);
      http = new ObservabilityServer({
        host,
        port: config.httpPort,
        registry,
        ready: () => ready && broker.ready !== false,
        logger,
      });
      await bind('http', 'httpPort', config.httpPort, http);
    }
    await broker.start();
    for (const { name, key, port, listener } of createListeners(config, credentials, broker, logger)) {
      await bind(name, key, port, listener);
      listeners.push(listener);
    }
  } catch (err) {
    // Undo what started; clients of a listener that did start are disconnected by the shutdown.
    await Promise.all(listeners.map((l) => l.close()));
    await broker.shutdown();
    await http?.close();
    throw err;
  }

  ready = true;
  logger.info({ event: 'server.ready', version: VERSION, nodeId, ports }, 'shoal ready');

  const shutdown = async () => {
    ready = false;
    logger.info({ event: 'server.stopping', timeoutMs: config.shutdownTimeoutMs });
    await Promise.all(listeners.map((l) => l.close()));
    const done = await within(broker.shutdown(), config.shutdownTimeoutMs, clock).catch((err: unknown) => {
      logger.error({ event: 'server.shutdown_error', err }, 'broker shutdown failed');
      return true;
    });
    if (!done) logger.warn({ event: 'server.shutdown_timeout', timeoutMs: config.shutdownTimeoutMs });
    await http?.close();
    logger.info({ event: 'server.stopped' });
  };
  let closing: Promise<void> | undefined;

  return {
    nodeId,
    ports: Object.freeze({ ...ports }),
    get ready() {
      return ready;
    },
    close() {
      closing ??= shutdown();
      return closing;
    },
  };
}

function createListeners(
  config: Config,
  credentials: TlsCredentials | undefined,
  broker: BrokerCore,
  logger: Logger,
): NamedListener[] {
  const host = config.host;
  const onConnection = (transport: Transport) => broker.accept(transport);
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
    });

  const out: NamedListener[] = [];
  if (config.port !== 0) {
    out.push({
      name: 'mqtt',
      key: 'port',
      port: config.port,
      listener: new TcpListener({ host, port: config.port, onConnection, onError: onError('tcp') }),
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
