/**
 * Shared by the auth integration tests: a server started from an `auth` config section with its log
 * lines captured (tests wait for log events, never for time), temp dirs, and mqtt.js connects that
 * report the CONNACK code of a refusal.
 */
import { EventEmitter, once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import mqtt from 'mqtt';
import type { AuthHooks } from '../../../src/auth/types.js';
import { validateConfig } from '../../../src/config/schema.js';
import { createLogger } from '../../../src/observability/logger.js';
import { type RunningServer, startServer } from '../../../src/server.js';
import { freePort } from '../../helpers/ports.js';

export type LogLine = Record<string, unknown>;

/** A logger whose JSON lines are kept; `next` waits for a line of an event. */
export class LogCapture {
  readonly lines: LogLine[] = [];
  private readonly emitter = new EventEmitter();
  readonly logger = createLogger('debug', {
    write: (s: string) => {
      const line = JSON.parse(s) as LogLine;
      this.lines.push(line);
      this.emitter.emit('line', line);
    },
  });

  events(event: string): LogLine[] {
    return this.lines.filter((l) => l.event === event);
  }

  /** The first line of `event` (matching `where`) logged after `from` lines; waits for it. */
  async next(
    event: string,
    where: (l: LogLine) => boolean = () => true,
    from = this.lines.length,
  ): Promise<LogLine> {
    const seen = this.lines.slice(from).find((l) => l.event === event && where(l));
    if (seen !== undefined) return seen;
    for (;;) {
      const [line] = (await once(this.emitter, 'line')) as [LogLine];
      if (line.event === event && where(line)) return line;
    }
  }
}

export interface AuthServer {
  server: RunningServer;
  port: number;
  url: string;
  log: LogCapture;
}

const running: RunningServer[] = [];
const dirs: string[] = [];
const clients: mqtt.MqttClient[] = [];

/** Closes what the helpers opened; call from afterEach. */
export async function cleanup(): Promise<void> {
  for (const c of clients.splice(0)) c.end(true);
  await Promise.all(running.splice(0).map((s) => s.close()));
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

export async function tempDir(): Promise<string> {
  const d = await mkdtemp(path.join(tmpdir(), 'shoal-auth-it-'));
  dirs.push(d);
  return d;
}

export async function startAuthServer(
  auth: Record<string, unknown>,
  extra: Record<string, unknown> = {},
  hooks?: Partial<AuthHooks>,
): Promise<AuthServer> {
  const port = await freePort();
  const config = validateConfig({
    host: '127.0.0.1',
    port,
    wsPort: 0,
    httpPort: 0,
    mqtt: { sysIntervalSeconds: 0 },
    ...extra,
    auth: { watchFiles: false, ...auth },
  });
  const log = new LogCapture();
  const server = await startServer(config, { logger: log.logger, auth: hooks });
  running.push(server);
  return { server, port, url: `mqtt://127.0.0.1:${port}`, log };
}

export type Connected = { client: mqtt.MqttClient; code: 0 } | { client: undefined; code: number };

/** Connects once (no reconnect); resolves with the client, or with the refusal's CONNACK code. */
export async function connect(url: string, options: mqtt.IClientOptions = {}): Promise<Connected> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 10_000, ...options });
  clients.push(client);
  return new Promise((resolve, reject) => {
    client.once('connect', () => resolve({ client, code: 0 }));
    client.once('error', (err: Error & { code?: number | string }) => {
      client.end(true);
      if (typeof err.code === 'number') resolve({ client: undefined, code: err.code });
      else reject(err);
    });
  });
}

/** Connects and expects success. */
export async function online(url: string, options: mqtt.IClientOptions = {}): Promise<mqtt.MqttClient> {
  const r = await connect(url, options);
  if (r.client === undefined) throw new Error(`CONNACK ${r.code}`);
  return r.client;
}

/** The next message a client receives. */
export function nextMessage(client: mqtt.MqttClient): Promise<{ topic: string; payload: string }> {
  return new Promise((resolve) =>
    client.once('message', (topic, payload) => resolve({ topic, payload: payload.toString() })),
  );
}
