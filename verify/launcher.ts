/**
 * Broker nodes as real processes, for the verifier: start, kill -9, pause (SIGSTOP), resume (SIGCONT)
 * and restart on the same port. Two targets: Shoal (the CLI from sources, as test/helpers/cluster.ts
 * runs it, with a short liveness timeout) and Aedes + mqemitter-redis + aedes-persistence-redis
 * (bench/servers/aedes-cluster-server.ts). The verifier reaches nodes only through MQTT and this.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../test/helpers/ports.js';
import { spawnTracked, type TrackedProcess } from '../test/helpers/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const START_TIMEOUT_MS = 30_000;

export type Target = 'shoal' | 'aedes';

export interface NodeOptions {
  target: Target;
  nodeId: string;
  redisUrl: string;
  /** Shoal config file contents (cluster.livenessTimeoutMs, heartbeatMs, ...). */
  config?: Record<string, unknown>;
  /** Clock skew of this node (ms), applied by verify/skew.ts. */
  skewMs?: number;
}

/** One broker node: a process that may be killed, paused and restarted on the same port. */
export class BrokerNode {
  private proc: TrackedProcess | undefined;
  port = 0;
  paused = false;

  constructor(readonly opts: NodeOptions) {}

  get running(): boolean {
    return this.proc?.running === true;
  }

  get nodeId(): string {
    return this.opts.nodeId;
  }

  async start(): Promise<void> {
    if (this.port === 0) this.port = await freePort();
    const { target, nodeId, redisUrl } = this.opts;
    const skew = ['--import', './verify/skew.ts'];
    let args: string[];
    let ready: RegExp;
    if (target === 'shoal') {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-verify-'));
      const config = path.join(dir, 'config.json');
      await writeFile(config, JSON.stringify(this.opts.config ?? {}));
      args = [
        '--import',
        'tsx',
        ...skew,
        'test/helpers/shoal-main.ts',
        'start',
        '--redis',
        redisUrl,
        '--node-id',
        nodeId,
        '--host',
        '127.0.0.1',
        '--port',
        String(this.port),
        '--ws-port',
        '0',
        '--http-port',
        String(await freePort()),
        '--log-level',
        process.env.VERIFY_LOG_LEVEL ?? 'info',
        '--config',
        config,
      ];
      ready = /"event":"server\.ready"/;
    } else {
      args = [
        '--import',
        'tsx',
        ...skew,
        'bench/servers/aedes-cluster-server.ts',
        '--port',
        String(this.port),
      ];
      args.push('--redis', redisUrl);
      ready = /"event":"bench\.listening"/;
    }
    this.proc = await spawnTracked(process.execPath, args, {
      cwd: ROOT,
      name: `${target}:${nodeId}`,
      outputLimit: 4 * 1024 * 1024,
      env: { ...process.env, NODE_ENV: 'test', SHOAL_VERIFY_SKEW_MS: String(this.opts.skewMs ?? 0) },
    });
    this.paused = false;
    await this.proc.waitForOutput(ready, START_TIMEOUT_MS);
  }

  /** kill -9; resolves once the process is gone. */
  async kill(): Promise<void> {
    const p = this.proc;
    if (p === undefined || !p.running) return;
    p.kill('SIGKILL');
    await p.exited;
    this.paused = false;
  }

  pause(): void {
    if (this.proc?.kill('SIGSTOP')) this.paused = true;
  }

  resume(): void {
    if (this.proc?.kill('SIGCONT')) this.paused = false;
  }

  /** kill -9 (if running) and start again with the same id and port. */
  async restart(skewMs?: number): Promise<void> {
    await this.kill();
    if (skewMs !== undefined) this.opts.skewMs = skewMs;
    await this.start();
  }

  /** Graceful stop (SIGTERM: the node drains) and start again with the same id and port. */
  async restartGracefully(skewMs?: number): Promise<void> {
    await this.stop();
    if (skewMs !== undefined) this.opts.skewMs = skewMs;
    await this.start();
  }

  /** Graceful stop (SIGCONT first, so a paused node can exit). */
  async stop(): Promise<void> {
    this.resume();
    await this.proc?.terminate(5_000);
  }

  output(): string {
    return this.proc?.output() ?? '';
  }
}
