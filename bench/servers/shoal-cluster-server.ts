/**
 * A Shoal node as the CLI starts it (`shoal start ...`: loadConfig + startServer), for the cluster
 * benchmark (bench/cluster.ts), with the broker's counters printed at exit:
 *
 *   node <build>/servers/shoal-cluster-server.js --impl <dir> -- --redis redis://127.0.0.1:P
 *        --node-id a --host 127.0.0.1 --port P --ws-port 0 --http-port 0 --log-level warn
 *
 * Everything after `--` goes to Shoal's own command-line parser (the same flags as bin/shoal.js);
 * without --redis it is a single in-memory node, through the same code path. `--impl` is the
 * directory holding the broker modules (dist/, a transpiled copy of src/, or src/ through tsx),
 * as in shoal-server.ts.
 *
 * Log lines (pino JSON at the level asked) go to stdout. On SIGTERM/SIGINT it prints one JSON line
 * `{"event":"bench.exit", broker.stats..., rssKB, heapUsedKB, samples}` and exits at once, without the
 * graceful drain (the runner stops Redis and the clients itself).
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

type ServerModule = typeof import('../../src/server.js');
type LoadModule = typeof import('../../src/config/load.js');
type BrokerModule = typeof import('../../src/broker/broker.js');
type Broker = InstanceType<BrokerModule['Broker']>;

const sep = process.argv.indexOf('--');
const own = sep >= 0 ? process.argv.slice(2, sep) : process.argv.slice(2);
const shoalArgv = sep >= 0 ? process.argv.slice(sep + 1) : [];
const implIndex = own.indexOf('--impl');
const impl = implIndex >= 0 ? own[implIndex + 1] : undefined;
if (impl === undefined) {
  console.error('shoal-cluster-server: --impl <dir> is required');
  process.exit(2);
}
const root = isAbsolute(impl) ? impl : resolve(process.cwd(), impl);
const load = <T>(rel: string): Promise<T> => import(pathToFileURL(resolve(root, rel)).href) as Promise<T>;

const [{ startServer }, { loadConfig }, { Broker: BrokerClass }] = await Promise.all([
  load<ServerModule>('server.js'),
  load<LoadModule>('config/load.js'),
  load<BrokerModule>('broker/broker.js'),
]);

// No config file or SHOAL_* variables from the environment: the flags alone decide.
const config = loadConfig({ argv: shoalArgv, env: {} });
let broker: Broker | undefined;
const server = await startServer(config, {
  createBroker: (deps) => {
    broker = new BrokerClass(deps);
    return broker;
  },
});

// Counters and memory every SAMPLE_MS (the last MAX_SAMPLES), printed with the exit line: where a
// node stalled and how its memory moved.
const SAMPLE_MS = 250;
const MAX_SAMPLES = 480;
const SAMPLE_FIELDS = [
  'epochMs',
  'messagesReceived',
  'messagesSent',
  'clusterMessagesSent',
  'clusterMessagesReceived',
  'dropped',
  'rssKB',
  'heapUsedKB',
  'externalKB',
  'arrayBuffersKB',
] as const;
const samples: number[][] = [];
setInterval(() => {
  const s = broker?.stats;
  if (s === undefined) return;
  const mem = process.memoryUsage();
  let dropped = 0;
  for (const n of Object.values(s.dropped)) dropped += n;
  samples.push([
    Date.now(),
    s.messagesReceived,
    s.messagesSent,
    s.clusterMessagesSent,
    s.clusterMessagesReceived,
    dropped,
    Math.round(mem.rss / 1024),
    Math.round(mem.heapUsed / 1024),
    Math.round(mem.external / 1024),
    Math.round(mem.arrayBuffers / 1024),
  ]);
  if (samples.length > MAX_SAMPLES) samples.shift();
}, SAMPLE_MS).unref();

function exit(): void {
  const mem = process.memoryUsage();
  const line = {
    event: 'bench.exit',
    nodeId: server.nodeId,
    ...broker?.stats,
    sampleFields: SAMPLE_FIELDS,
    samples,
    rssKB: Math.round(mem.rss / 1024),
    heapUsedKB: Math.round(mem.heapUsed / 1024),
    externalKB: Math.round(mem.external / 1024),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(0);
}
process.on('SIGTERM', exit);
process.on('SIGINT', exit);

process.stdout.write(
  `${JSON.stringify({ event: 'bench.listening', port: server.ports.mqtt, nodeId: server.nodeId, impl: root, pid: process.pid })}\n`,
);
