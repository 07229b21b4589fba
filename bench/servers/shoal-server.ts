/**
 * A bare Shoal broker for benchmarks: the in-memory Broker behind one TCP listener on 127.0.0.1,
 * no $SYS, logger silent unless told otherwise. No configuration file, no HTTP, no WebSocket.
 *
 *   node <build>/servers/shoal-server.js --impl <dir> --port <port> [--log-level warn]
 *   node --import tsx bench/servers/shoal-server.ts --impl src --port <port>
 *
 * `--impl` is the directory holding the broker modules: dist/ (npm run build), a transpiled copy of
 * src/ made by bench/servers/index.ts in the run's temp directory, or src/ when run through tsx.
 * Modules are imported dynamically so that this one file serves all three.
 *
 * On SIGTERM/SIGINT it prints one JSON line `{"event":"bench.exit", stats..., rssKB}` on stdout and
 * exits at once (the runner tears connections down itself). Crashes print their stack on stderr.
 */
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

type BrokerModule = typeof import('../../src/broker/broker.js');
type OptionsModule = typeof import('../../src/broker/options.js');
type ClockModule = typeof import('../../src/clock.js');
type LoggerModule = typeof import('../../src/observability/logger.js');
type TcpModule = typeof import('../../src/transport/tcp.js');
type AcceptModule = typeof import('../../src/connection/accept.js');
type LocalNodeModule = typeof import('../../src/backend/disk/local-node.js');
type HubModule = Partial<typeof import('../../src/backend/memory/cluster-hub.js')>;
type LogLevel = Parameters<LoggerModule['createLogger']>[0];

function arg(name: string, fallback?: string): string {
  const i = process.argv.indexOf(name);
  const v = i >= 0 ? process.argv[i + 1] : undefined;
  if (v === undefined || v.startsWith('--')) {
    if (fallback !== undefined) return fallback;
    console.error(`shoal-server: ${name} is required`);
    process.exit(2);
  }
  return v;
}

const impl = arg('--impl');
const port = Number(arg('--port'));
const logLevel = arg('--log-level', 'silent') as LogLevel;
const root = isAbsolute(impl) ? impl : resolve(process.cwd(), impl);
const load = <T>(rel: string): Promise<T> => import(pathToFileURL(resolve(root, rel)).href) as Promise<T>;

const [{ Broker }, { defaultBrokerOptions }, { systemClock }, { createLogger }, { TcpListener }] =
  await Promise.all([
    load<BrokerModule>('broker/broker.js'),
    load<OptionsModule>('broker/options.js'),
    load<ClockModule>('clock.js'),
    load<LoggerModule>('observability/logger.js'),
    load<TcpModule>('transport/tcp.js'),
  ]);

// --data-dir DIR [--sync batch|always]: a single node with its state on disk (persistence.dir).
const dataDir = process.argv.includes('--data-dir') ? arg('--data-dir') : undefined;
const local =
  dataDir === undefined
    ? undefined
    : await (await load<LocalNodeModule>('backend/disk/local-node.js')).openLocalNode({
        dir: dataDir,
        sync: arg('--sync', 'batch') as 'batch' | 'always',
        clock: systemClock,
        nodeId: 'bench',
        maxQueued: defaultBrokerOptions.maxQueuedMessages,
      });
// Trees since the one session path (#12) take the single node's backend from the caller; older
// ones made their own (standaloneNode absent).
const { standaloneNode } = await load<HubModule>('backend/memory/cluster-hub.js');
const broker = new Broker({
  options: { ...defaultBrokerOptions, sysIntervalSeconds: 0 },
  clock: systemClock,
  logger: createLogger(logLevel),
  version: 'bench',
  cluster: local?.backend ?? standaloneNode?.(systemClock, 'bench', defaultBrokerOptions.maxQueuedMessages),
} as ConstructorParameters<BrokerModule['Broker']>[0]);
broker.start();

// Trees from before src/connection/accept.ts (a commit compared against) had Broker.accept.
const legacy = broker as unknown as {
  accept?: (t: Parameters<ReturnType<AcceptModule['acceptor']>>[0]) => void;
};
const onConnection =
  typeof legacy.accept === 'function'
    ? legacy.accept.bind(broker)
    : (await load<AcceptModule>('connection/accept.js')).acceptor(broker);

let acceptErrors = 0;
const listener = new TcpListener({
  host: '127.0.0.1',
  port,
  onConnection,
  onError: (err) => {
    acceptErrors++;
    if (acceptErrors <= 5) console.error(`shoal-server: listener error: ${err.stack ?? err}`);
  },
});
const bound = await listener.listen();

function rssKB(): number {
  return Math.round(process.memoryUsage.rss() / 1024);
}

function exit(): void {
  const mem = process.memoryUsage();
  const line = {
    event: 'bench.exit',
    ...broker.stats,
    acceptErrors,
    rssKB: rssKB(),
    heapUsedKB: Math.round(mem.heapUsed / 1024),
    externalKB: Math.round(mem.external / 1024),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  process.exit(0);
}
process.on('SIGTERM', exit);
process.on('SIGINT', exit);

process.stdout.write(
  `${JSON.stringify({ event: 'bench.listening', port: bound, impl: root, pid: process.pid })}\n`,
);
