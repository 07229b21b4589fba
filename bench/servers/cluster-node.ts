/**
 * One node of a Shoal cluster or of an Aedes + Redis cluster on `redisUrl`, as the cluster
 * benchmarks (bench/takeover.ts, bench/probes.ts) start them: a fresh loopback port, warn-level logs.
 */
import { freePort, type Launchers, type RunningServer, startServerProcess } from './index.js';

export type ClusterContender = 'shoal-cluster' | 'aedes-cluster';

const PREFIX = { raiseNofile: true };
const START_TIMEOUT_MS = 15_000;

export async function startClusterNode(
  launchers: Launchers,
  c: ClusterContender,
  label: string,
  redisUrl: string,
): Promise<RunningServer> {
  const port = await freePort();
  const args =
    c === 'aedes-cluster'
      ? [...launchers.script('aedes-cluster-server'), '--port', String(port), '--redis', redisUrl]
      : [
          ...launchers.script('shoal-cluster-server'),
          '--impl',
          launchers.implDir,
          '--',
          ...['--redis', redisUrl, '--node-id', label, '--host', '127.0.0.1', '--port', String(port)],
          ...['--ws-port', '0', '--http-port', '0', '--log-level', 'warn'],
        ];
  return startServerProcess({
    name: `${c} node ${label}`,
    command: process.execPath,
    args,
    port,
    prefix: PREFIX,
    startTimeoutMs: START_TIMEOUT_MS,
  });
}
