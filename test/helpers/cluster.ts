/**
 * Shoal cluster nodes as real processes for the cluster suites: `startNode` spawns
 * `node --import tsx test/helpers/shoal-main.ts start --redis URL --node-id ID ...` (the CLI of
 * src/cli.ts, as bin/shoal.js runs it) on free loopback ports and waits
 * for the `server.ready` log line and `/readyz` 200; `startCluster` starts several at once.
 * Processes go through spawnTracked, so `killAllTracked()` ends them by PID.
 *
 * Also: `waitFor` (poll an observable condition that is inherently eventual, never a fixed sleep),
 * `connectMqtt` and `Inbox` (mqtt.js clients whose received messages can be awaited).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type IClientOptions, type IConnackPacket, type MqttClient } from 'mqtt';
import { freePort } from './ports.js';
import { type ExitStatus, spawnTracked, type TrackedProcess } from './processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOOPBACK = '127.0.0.1';
const READY_LINE = /"event":"server\.ready"/;
const START_TIMEOUT_MS = 20_000;

export interface ShoalNode {
  readonly nodeId: string;
  /** MQTT TCP port. */
  readonly port: number;
  readonly httpPort: number;
  /** mqtt://127.0.0.1:port */
  readonly url: string;
  readonly pid: number;
  readonly process: TrackedProcess;
  /** /metrics parsed: `name` or `name{labels}` → value. */
  metrics(): Promise<Record<string, number>>;
  /** One metric (0 when absent). */
  metric(name: string): Promise<number>;
  /** HTTP status of /readyz (0 when the endpoint does not answer). */
  readyz(): Promise<number>;
  /** Sends a signal to the PID; returns whether it was sent. */
  kill(signal?: NodeJS.Signals): boolean;
  /** SIGTERM (SIGKILL after 5 s); resolves once the process exited. */
  stop(): Promise<ExitStatus>;
}

export interface StartNodeOptions {
  /** Cluster mode; absent: a single node (in memory, or on `dataDir`). */
  redisUrl?: string;
  /** A single node's data dir (--data-dir). */
  dataDir?: string;
  nodeId: string;
  /** Settings only a config file can set (e.g. `{ cluster: { livenessTimeoutMs: 1000 } }`). */
  config?: Record<string, unknown>;
  /** Log level of the node (default info: the helper waits for an info line). */
  logLevel?: string;
  /** MQTT port to listen on (a restarted node behind a balancer keeps its port); default a free one. */
  port?: number;
}

/** Starts one node; retries with other ports if a freshly picked port was taken meanwhile. */
export async function startNode(opts: StartNodeOptions): Promise<ShoalNode> {
  let configFile: string | undefined;
  let dir: string | undefined;
  if (opts.config !== undefined) {
    dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-node-'));
    configFile = path.join(dir, 'config.json');
    await writeFile(configFile, JSON.stringify(opts.config));
  }
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        return await launch(opts, configFile);
      } catch (err) {
        if (!(err instanceof PortTakenError) || attempt >= 4 || opts.port !== undefined) throw err;
      }
    }
  } finally {
    // The node reads its config file at start; it is not needed afterwards.
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  }
}

class PortTakenError extends Error {}

async function launch(opts: StartNodeOptions, configFile: string | undefined): Promise<ShoalNode> {
  const port = opts.port ?? (await freePort(LOOPBACK));
  const httpPort = await freePort(LOOPBACK);
  const args = [
    '--import',
    'tsx',
    // src/cli.ts only exports main(); this entry runs it like bin/shoal.js does for dist/.
    'test/helpers/shoal-main.ts',
    'start',
    ...(opts.redisUrl === undefined ? [] : ['--redis', opts.redisUrl]),
    ...(opts.dataDir === undefined ? [] : ['--data-dir', opts.dataDir]),
    '--node-id',
    opts.nodeId,
    '--host',
    LOOPBACK,
    '--port',
    String(port),
    '--ws-port',
    '0',
    '--http-port',
    String(httpPort),
    '--log-level',
    opts.logLevel ?? 'info',
  ];
  if (configFile !== undefined) args.push('--config', configFile);
  const proc = await spawnTracked(process.execPath, args, {
    cwd: ROOT,
    name: `shoal:${opts.nodeId}`,
    outputLimit: 256 * 1024,
    env: { ...process.env, NODE_ENV: 'test' },
  });
  try {
    await proc.waitForOutput(READY_LINE, START_TIMEOUT_MS);
  } catch (err) {
    await proc.terminate(2_000);
    if (/EADDRINUSE|LISTEN_FAILED/.test(proc.output())) throw new PortTakenError(String(err), { cause: err });
    throw err;
  }
  const base = `http://${LOOPBACK}:${httpPort}`;
  const readyz = async (): Promise<number> => {
    try {
      const res = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) });
      await res.arrayBuffer();
      return res.status;
    } catch {
      return 0;
    }
  };
  const metrics = async (): Promise<Record<string, number>> => {
    const res = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) });
    if (res.status !== 200) throw new Error(`${opts.nodeId}: /metrics answered ${res.status}`);
    return parseMetrics(await res.text());
  };
  try {
    await waitFor(async () => (await readyz()) === 200, 10_000, `${opts.nodeId} /readyz 200`);
  } catch (err) {
    await proc.terminate(2_000);
    throw new Error(`${String(err)}\nOutput:\n${proc.output().slice(-4_000)}`);
  }
  return {
    nodeId: opts.nodeId,
    port,
    httpPort,
    url: `mqtt://${LOOPBACK}:${port}`,
    pid: proc.pid,
    process: proc,
    metrics,
    metric: async (name) => (await metrics())[name] ?? 0,
    readyz,
    kill: (signal = 'SIGTERM') => proc.kill(signal),
    stop: () => proc.terminate(5_000),
  };
}

/** Starts `n` nodes (ids A, B, C, ... unless `ids` is given) in parallel. */
export async function startCluster(
  n: number,
  redisUrl: string,
  config?: Record<string, unknown>,
  ids?: string[],
): Promise<ShoalNode[]> {
  const names = ids ?? Array.from({ length: n }, (_, i) => String.fromCharCode(65 + i));
  return Promise.all(names.map((nodeId) => startNode({ redisUrl, nodeId, config })));
}

/** Prometheus text → `name` (or `name{labels}`) → value. */
export function parseMetrics(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (line.length === 0 || line.startsWith('#')) continue;
    const m = /^([^\s{]+(?:\{[^}]*\})?)\s+(\S+)/.exec(line);
    if (m !== null) out[m[1]] = Number(m[2]);
  }
  return out;
}

/**
 * Polls `condition` (short backoff, 20 ms doubling to 200 ms) until it is true; throws after
 * `timeoutMs`. Only for conditions that are inherently eventual and observable from outside (another
 * process's state, a liveness timeout): tests wait on events wherever they can.
 */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  for (;;) {
    if (await condition()) return;
    const left = deadline - Date.now();
    if (left <= 0) throw new Error(`waitFor: ${what} not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, Math.min(delay, left)));
    delay = Math.min(delay * 2, 200);
  }
}

// ---- MQTT clients ----------------------------------------------------------------------------

export interface Received {
  topic: string;
  payload: string;
  qos: number;
  retain: boolean;
  dup: boolean;
  properties: Record<string, unknown> | undefined;
}

/** Every message a client received, in arrival order; `until` resolves on a condition over them. */
export class Inbox {
  readonly messages: Received[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(client: MqttClient) {
    client.on('message', (topic, payload, packet) => {
      this.messages.push({
        topic,
        payload: payload.toString(),
        qos: packet.qos,
        retain: packet.retain,
        dup: packet.dup,
        properties: packet.properties as Record<string, unknown> | undefined,
      });
      for (const w of [...this.waiters]) w();
    });
  }

  get payloads(): string[] {
    return this.messages.map((m) => m.payload);
  }

  /** Resolves once `done(messages)` holds; rejects after `timeoutMs` with what arrived. */
  until(done: (messages: Received[]) => boolean, timeoutMs = 10_000, what = 'messages'): Promise<void> {
    if (done(this.messages)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done(this.messages)) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        const tail = this.payloads.slice(-10).join(', ');
        reject(
          new Error(
            `Inbox: ${what} not received within ${timeoutMs} ms (${this.messages.length} so far; last: ${tail})`,
          ),
        );
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  /** Resolves once `n` messages arrived in total. */
  count(n: number, timeoutMs = 10_000): Promise<void> {
    return this.until((m) => m.length >= n, timeoutMs, `${n} messages`);
  }

  /** Messages other than route probes (see untilRouted). */
  get data(): Received[] {
    return this.messages.filter((m) => !isProbe(m.payload));
  }

  /** Resolves once `n` messages other than probes arrived. */
  dataCount(n: number, timeoutMs = 10_000): Promise<void> {
    return this.until(
      (ms) => ms.reduce((k, m) => k + (isProbe(m.payload) ? 0 : 1), 0) >= n,
      timeoutMs,
      `${n} non-probe messages`,
    );
  }

  /** Resolves once a message with this payload arrived. */
  payload(p: string, timeoutMs = 10_000): Promise<void> {
    return this.until((ms) => ms.some((m) => m.payload === p), timeoutMs, `payload ${p}`);
  }
}

let clientSeq = 0;

/** A unique client id / topic prefix for one test. */
export function uniq(prefix: string): string {
  return `${prefix}-${process.pid}-${++clientSeq}-${Math.random().toString(36).slice(2, 7)}`;
}

/** Connects an mqtt.js client (no automatic reconnect) and attaches an Inbox. */
export async function connectMqtt(
  url: string,
  opts: IClientOptions = {},
): Promise<{ client: MqttClient; inbox: Inbox; connack: IConnackPacket }> {
  const client = mqtt.connect(url, {
    clientId: uniq('c'),
    protocolVersion: 5,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
    ...opts,
  });
  const inbox = new Inbox(client);
  const connack = await new Promise<IConnackPacket>((resolve, reject) => {
    const onError = (err: Error) => {
      client.end(true);
      reject(err);
    };
    client.once('connect', (packet) => {
      client.off('error', onError);
      resolve(packet);
    });
    client.once('error', onError);
    client.once('close', () => reject(new Error(`connection to ${url} closed before CONNACK`)));
  });
  client.on('error', () => undefined);
  return { client, inbox, connack };
}

/** Ends clients without waiting for the broker. */
export async function endAll(...clients: (MqttClient | undefined)[]): Promise<void> {
  await Promise.all(
    clients.map((c) => (c === undefined ? undefined : c.endAsync(true).catch(() => undefined))),
  );
}

export const PROBE = 'probe';

/** Route probes (see untilRouted): tests leave them out of what they count. */
export const isProbe = (payload: string) => payload.startsWith(PROBE);

/**
 * Waits until subscriptions made on other nodes are known to the publisher's node: a route reaches
 * other nodes through Redis (route log → each node's replica), so it is eventual. Publishes QoS 0
 * probes (payloads starting with `probe`) to `topic` until each inbox got one; then, unless the
 * inboxes are members of one shared subscription (where each probe reaches one member), one last
 * probe that every inbox must get, so no earlier probe is still on its way afterwards. Tests leave
 * probes out of what they count (`Inbox.data`).
 */
export async function untilRouted(
  publisher: MqttClient,
  topic: string,
  inboxes: Inbox[],
  opts: { shared?: boolean; timeoutMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const got = (inbox: Inbox, p?: string) =>
    inbox.messages.some((m) => m.topic === topic && (p === undefined ? isProbe(m.payload) : m.payload === p));
  await waitFor(
    () => {
      if (inboxes.every((i) => got(i))) return true;
      publisher.publish(topic, PROBE, { qos: 0 });
      return false;
    },
    timeoutMs,
    `a probe on ${topic} to arrive`,
  );
  if (opts.shared) return;
  const last = `${PROBE}-last-${Math.random().toString(36).slice(2)}`;
  publisher.publish(topic, last, { qos: 0 });
  await Promise.all(inboxes.map((i) => i.until(() => got(i, last), timeoutMs, `probe ${last}`)));
}
