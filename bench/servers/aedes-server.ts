/**
 * Aedes 1.x (npm dev dependency) for benchmarks: default options and in-memory persistence, one
 * `net` server on 127.0.0.1 with Nagle off (as Shoal and the Mosquitto config in this bench).
 *
 *   node <build>/servers/aedes-server.js --port <port>   (transpiled by bench/servers/index.ts)
 *   node --import tsx bench/servers/aedes-server.ts --port <port>
 *
 * On SIGTERM/SIGINT it prints one JSON line `{"event":"bench.exit", ...}` on stdout and exits.
 */
import net from 'node:net';
import { Aedes } from 'aedes';

const i = process.argv.indexOf('--port');
const port = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
if (!Number.isInteger(port)) {
  console.error('aedes-server: --port is required');
  process.exit(2);
}

const broker = await Aedes.createBroker();
// Counted, not printed: the runner destroys client sockets at the end of each trial, which Aedes
// reports as client errors (EPIPE, ECONNRESET). The first few messages go into the exit line.
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
server.on('error', (err) => console.error(`aedes-server: server error: ${err.stack ?? err}`));
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ event: 'bench.listening', port, pid: process.pid })}\n`);
});

function exit(): void {
  const rssKB = Math.round(process.memoryUsage.rss() / 1024);
  process.stdout.write(
    `${JSON.stringify({ event: 'bench.exit', clients: broker.connectedClients, clientErrors, connectionErrors, firstErrors, rssKB })}\n`,
  );
  process.exit(0);
}
process.on('SIGTERM', exit);
process.on('SIGINT', exit);
