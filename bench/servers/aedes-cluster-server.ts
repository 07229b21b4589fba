/**
 * One Aedes 1.x node of a cluster for the cluster benchmark (bench/cluster.ts): mqemitter-redis as
 * the message bus between nodes and aedes-persistence-redis as the shared persistence, both on the
 * same Redis, as the Aedes README describes "with clusters". Otherwise as aedes-server.ts: default
 * options, one `net` server on 127.0.0.1 with Nagle off.
 *
 *   node <build>/servers/aedes-cluster-server.js --port <port> --redis redis://127.0.0.1:<port>
 *   node --import tsx bench/servers/aedes-cluster-server.ts --port <port> --redis <url>
 *
 * On SIGTERM/SIGINT it prints one JSON line `{"event":"bench.exit", ...}` on stdout and exits at
 * once. Errors of the emitter, the persistence or the broker go to stderr (the first 20).
 */
import { createRequire } from 'node:module';
import net from 'node:net';
import { Aedes } from 'aedes';

function arg(name: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined || v.startsWith('--')) {
    console.error(`aedes-cluster-server: ${name} is required`);
    process.exit(2);
  }
  return v;
}

const port = Number(arg('--port'));
const redisUrl = new URL(arg('--redis'));
if (!Number.isInteger(port)) {
  console.error('aedes-cluster-server: --port must be a number');
  process.exit(2);
}

// Both are CommonJS; aedes-persistence-redis has no type declarations.
const require = createRequire(import.meta.url);
type Factory = (opts: Record<string, unknown>) => unknown;
const mqemitterRedis = require('mqemitter-redis') as Factory;
const persistenceRedis = require('aedes-persistence-redis') as Factory;

let reported = 0;
function report(what: string, err: unknown): void {
  if (++reported <= 20) console.error(`aedes-cluster-server: ${what}: ${(err as Error)?.stack ?? err}`);
}

const redis = { host: redisUrl.hostname, port: Number(redisUrl.port || 6379) };
const mq = mqemitterRedis({ ...redis }) as { state: { on(e: 'error', f: (err: Error) => void): void } };
mq.state.on('error', (err) => report('mqemitter-redis', err));
const persistence = persistenceRedis({ ...redis });

const broker = await Aedes.createBroker({ mq, persistence });
// Aedes emits 'error' when the persistence fails (not in its typed events).
(broker as unknown as NodeJS.EventEmitter).on('error', (err: Error) => report('broker', err));
// Counted, not printed: the runner destroys client sockets at the end of each trial.
let clientErrors = 0;
let connectionErrors = 0;
const firstErrors: string[] = [];
broker.on('clientError', (client, err) => {
  clientErrors++;
  if (firstErrors.length < 5) firstErrors.push(`clientError ${client?.id}: ${err.message}`);
});
broker.on('connectionError', (client, err) => {
  connectionErrors++;
  if (firstErrors.length < 5) firstErrors.push(`connectionError ${client?.id}: ${err.message}`);
});

const server = net.createServer({ noDelay: true }, broker.handle);
server.on('error', (err) => report('server', err));
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(
    `${JSON.stringify({ event: 'bench.listening', port, id: broker.id, pid: process.pid })}\n`,
  );
});

function exit(): void {
  const mem = process.memoryUsage();
  process.stdout.write(
    `${JSON.stringify({
      event: 'bench.exit',
      id: broker.id,
      clients: broker.connectedClients,
      clientErrors,
      connectionErrors,
      firstErrors,
      rssKB: Math.round(mem.rss / 1024),
      heapUsedKB: Math.round(mem.heapUsed / 1024),
    })}\n`,
  );
  process.exit(0);
}
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
