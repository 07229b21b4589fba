/**
 * HAProxy in TCP mode in front of Shoal nodes (round robin), as operators run it. Needs the haproxy
 * binary (installed by .ci/run; the suite stops at start without it: test/helpers/tools.ts).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ShoalNode } from './cluster.js';
import { freePort, waitForPort } from './ports.js';
import { spawnTracked } from './processes.js';
import { requireTool } from './tools.js';

export const haproxyBin: string = requireTool('haproxy', process.env.HAPROXY_BIN);

export interface Balancer {
  /** mqtt://127.0.0.1:port of the frontend. */
  url: string;
  port: number;
  stop(): Promise<void>;
}

/** Starts HAProxy balancing over `nodes`; `check`: health-check the servers (skip dead ones fast). */
export async function startHaproxy(
  nodes: readonly Pick<ShoalNode, 'nodeId' | 'port'>[],
  opts: { check?: boolean } = {},
): Promise<Balancer> {
  if (haproxyBin === undefined) throw new Error('haproxy is not installed');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shoal-haproxy-'));
  const port = await freePort();
  const cfg = path.join(dir, 'haproxy.cfg');
  const check = opts.check ? ' check inter 200 fall 1 rise 1' : '';
  await writeFile(
    cfg,
    [
      'global',
      '  maxconn 4096',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 60s',
      '  timeout server 60s',
      '  retries 3',
      '  option redispatch',
      'frontend mqtt',
      `  bind 127.0.0.1:${port}`,
      '  default_backend shoal',
      'backend shoal',
      '  balance roundrobin',
      ...nodes.map((n) => `  server ${n.nodeId} 127.0.0.1:${n.port}${check}`),
      '',
    ].join('\n'),
  );
  // -db: stay in the foreground (no daemon), so the tracked PID is HAProxy itself.
  const proc = await spawnTracked(haproxyBin, ['-f', cfg, '-db'], { name: 'haproxy' });
  try {
    await waitForPort(port, '127.0.0.1', 10_000);
  } catch (err) {
    throw new Error(`${String(err)}\nhaproxy output:\n${proc.output()}`);
  }
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    stop: async () => {
      await proc.terminate(2_000);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
