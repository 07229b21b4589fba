/**
 * HAProxy in TCP mode, round robin over broker nodes, as operators put it in front of a cluster
 * (bench/storm.ts). The config lives in the run's directory; `-db` keeps HAProxy in the foreground,
 * so the PID tracked is HAProxy's own and a kill -9 of it is a load balancer failing.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type RunningServer, type SpawnPrefix, startServerProcess } from './index.js';

export const HAPROXY_BIN = process.env.HAPROXY_BIN ?? 'haproxy';

export interface HaproxyOptions {
  workDir: string;
  /** The frontend port: a balancer started again on the same port is its failover. */
  port: number;
  backends: readonly { name: string; port: number }[];
  /** Connections it takes at once (global maxconn). */
  maxConnections: number;
  /** Health-check the nodes (every 200 ms, out after one failure) and send a refused connect elsewhere. */
  check?: boolean;
  prefix: SpawnPrefix;
  startTimeoutMs: number;
}

export function startHaproxy(o: HaproxyOptions): Promise<RunningServer> {
  const dir = join(o.workDir, `haproxy-${o.port}`);
  mkdirSync(dir, { recursive: true });
  const cfg = join(dir, 'haproxy.cfg');
  writeFileSync(
    cfg,
    [
      'global',
      `  maxconn ${o.maxConnections}`,
      'defaults',
      '  mode tcp',
      `  maxconn ${o.maxConnections}`,
      '  timeout connect 5s',
      '  timeout client 10m',
      '  timeout server 10m',
      '  retries 3',
      '  option redispatch',
      'frontend mqtt',
      `  bind 127.0.0.1:${o.port}`,
      '  backlog 16384',
      '  default_backend nodes',
      'backend nodes',
      '  balance roundrobin',
      ...o.backends.map(
        (b) => `  server ${b.name} 127.0.0.1:${b.port}${o.check ? ' check inter 200 fall 1 rise 1' : ''}`,
      ),
      '',
    ].join('\n'),
  );
  return startServerProcess({
    name: 'haproxy',
    command: HAPROXY_BIN,
    args: ['-f', cfg, '-db'],
    port: o.port,
    prefix: o.prefix,
    startTimeoutMs: o.startTimeoutMs,
  });
}
