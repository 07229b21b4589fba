/**
 * Starting and stopping the brokers under test, each as its own child process on a free loopback
 * port: wait until it accepts TCP connections, expose its PID (RSS from /proc/PID/status, CPU time
 * from /proc/PID/stat), stop it by PID (SIGTERM, then SIGKILL after a bounded wait).
 *
 * - shoal:     bench/servers/shoal-server.ts (the Broker and one TcpListener), run with plain `node`
 *              from compiled JavaScript — dist/ when it is up to date with src/, else a copy of src/
 *              transpiled into the run's temp directory — or through tsx as a fallback; or the real CLI
 *              (`node bin/shoal.js start ...`, needs dist/cli.js) with `cli: true`.
 * - mosquitto: /usr/sbin/mosquitto with a generated config in a temp directory.
 * - aedes:     bench/servers/aedes-server.ts, transpiled like the Shoal launcher and run with `node`.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import net from 'node:net';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export type BrokerName =
  | 'shoal'
  | 'mosquitto'
  | 'aedes'
  | 'shoal-disk'
  | 'shoal-disk-always'
  | 'mosquitto-disk'
  | 'shoal-redis'
  | 'shoal-base';
/** The brokers a run compares by default. */
export const BROKERS: readonly BrokerName[] = ['shoal', 'mosquitto', 'aedes'];
/**
 * Every broker --brokers may name: also a single Shoal with a data dir (persistence.sync batch or
 * always) and Mosquitto with `persistence true` (its defaults: saved every 30 min and at exit).
 */
export const ALL_BROKERS: readonly BrokerName[] = [
  ...BROKERS,
  'shoal-disk',
  'shoal-disk-always',
  'mosquitto-disk',
  // One Shoal node in cluster mode, on a redis-server of its own (started and stopped with it).
  'shoal-redis',
  // Shoal built from another commit (--shoal-base DIR): a regression check in the same run.
  'shoal-base',
];

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const MOSQUITTO_BIN = '/usr/sbin/mosquitto';

/** Mosquitto settings, chosen to match Shoal's defaults (src/broker/options.ts) where both have one. */
export const MOSQUITTO_SETTINGS: readonly string[] = [
  'allow_anonymous true',
  // Shoal: maxQueuedMessages 1000, maxInflightMessages 100.
  'max_queued_messages 1000',
  'max_inflight_messages 100',
  // No byte limits (Shoal bounds a slow client by its outbound buffer, 4 MB, not by queued bytes).
  'max_queued_bytes 0',
  'max_inflight_bytes 0',
  // Shoal and the Aedes launcher disable Nagle; Mosquitto's default leaves it on.
  'set_tcp_nodelay true',
  'persistence false',
  'log_dest none',
  'connection_messages false',
];

// ---- Shoal implementation (compiled JS preferred) --------------------------------------------------

export type ShoalImpl = 'dist' | 'build' | 'tsx';

export interface Launchers {
  shoalImpl: ShoalImpl;
  /** Why this implementation was chosen, for the report. */
  shoalNote: string;
  shoalCli: boolean;
  /** Node argv (after `node`) to run a launcher: plain JS when transpiled, else via tsx. */
  shoal: (port: number, logLevel: string) => string[];
  aedes: (port: number) => string[];
  /** The directory holding the Shoal modules that run (dist/, the transpiled copy, or src/). */
  implDir: string;
  /** Node argv (after `node`) to run bench/servers/<name>.ts (transpiled when possible). */
  script: (name: string) => string[];
}

function walk(dir: string, ext: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(p, ext));
    else if (entry.name.endsWith(ext) && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** The src files (.ts, and the .lua the build copies) whose dist/ counterpart is missing or older. */
function staleDist(): string[] {
  const stale: string[] = [];
  for (const src of [...walk(join(REPO, 'src'), '.ts'), ...walk(join(REPO, 'src'), '.lua')]) {
    const rel = relative(join(REPO, 'src'), src).replace(/\.ts$/, '.js');
    const out = join(REPO, 'dist', rel);
    if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) stale.push(relative(REPO, src));
  }
  return stale;
}

/**
 * TypeScript -> JavaScript, one file at a time (no type check: `verbatimModuleSyntax` makes every
 * file transpilable alone). Fast, and unaffected by type errors elsewhere in a tree being edited.
 */
async function transpile(files: string[], fromDir: string, toDir: string): Promise<void> {
  const ts = (await import('typescript')).default;
  for (const file of files) {
    const source = readFileSync(file, 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.ESNext,
        verbatimModuleSyntax: true,
        esModuleInterop: true,
        sourceMap: false,
      },
    });
    const out = join(toDir, relative(fromDir, file)).replace(/\.ts$/, '.js');
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, outputText);
  }
}

/** The launcher scripts in bench/servers, transpiled together into the run's build directory. */
const LAUNCHER_FILES = [
  'shoal-server.ts',
  'aedes-server.ts',
  'shoal-cluster-server.ts',
  'aedes-cluster-server.ts',
];

export interface PrepareOptions {
  /**
   * Where transpiled JavaScript goes (a temp directory of the run, outside the repository so that
   * linters and git never see it; a node_modules symlink there resolves the dependencies).
   */
  buildDir: string;
  /** Force an implementation; default: dist if up to date, else build. */
  shoalImpl?: ShoalImpl;
  shoalCli?: boolean;
}

export async function prepareLaunchers(options: PrepareOptions): Promise<Launchers> {
  const BUILD = options.buildDir;
  mkdirSync(BUILD, { recursive: true });
  if (!existsSync(join(BUILD, 'node_modules')))
    symlinkSync(join(REPO, 'node_modules'), join(BUILD, 'node_modules'), 'dir');
  // src/version.ts reads ../package.json relative to itself: give the transpiled tree one.
  writeFileSync(
    join(BUILD, 'package.json'),
    `${JSON.stringify({ type: 'module', version: '0.0.0-bench' })}\n`,
  );
  const serversDir = join(REPO, 'bench/servers');
  let launchersCompiled = true;
  try {
    await transpile(
      LAUNCHER_FILES.map((f) => join(serversDir, f)),
      serversDir,
      join(BUILD, 'servers'),
    );
  } catch (err) {
    launchersCompiled = false;
    console.error(`bench: could not transpile the launchers (${(err as Error).message}); using tsx`);
  }

  let impl: ShoalImpl;
  let note: string;
  const hasDist = existsSync(join(REPO, 'dist/broker/broker.js'));
  const stale = hasDist ? staleDist() : [];
  if (options.shoalImpl !== undefined) {
    impl = options.shoalImpl;
    note = `--shoal-impl ${impl}`;
    if (impl === 'dist' && stale.length > 0)
      note += ` (WARNING: dist/ is older than ${stale.length} src files)`;
  } else if (hasDist && stale.length === 0) {
    impl = 'dist';
    note = 'dist/ (compiled by npm run build, up to date with src/)';
  } else {
    impl = 'build';
    note = hasDist
      ? `src/ transpiled to JavaScript for this run (dist/ is older than ${stale.length} src files, e.g. ${stale[0]})`
      : 'src/ transpiled to JavaScript for this run (no dist/)';
  }
  if (impl === 'build') {
    try {
      await transpile(walk(join(REPO, 'src'), '.ts'), join(REPO, 'src'), join(BUILD, 'shoal'));
      // The Redis backend reads its Lua scripts beside its modules (as npm run build copies them).
      for (const lua of walk(join(REPO, 'src'), '.lua')) {
        const out = join(BUILD, 'shoal', relative(join(REPO, 'src'), lua));
        mkdirSync(dirname(out), { recursive: true });
        copyFileSync(lua, out);
      }
    } catch (err) {
      impl = 'tsx';
      note = `src/ through tsx (transpiling failed: ${(err as Error).message})`;
    }
  }
  if (!launchersCompiled && impl !== 'tsx') note += '; launcher itself through tsx';
  if (impl === 'tsx') note = note.startsWith('src/') ? note : `src/ through tsx (${note})`;

  const shoalCli = options.shoalCli === true;
  if (shoalCli && !existsSync(join(REPO, 'dist/cli.js')))
    throw new Error('--shoal-cli needs dist/cli.js (run npm run build)');

  const implDir = { dist: join(REPO, 'dist'), build: join(BUILD, 'shoal'), tsx: join(REPO, 'src') }[impl];
  const viaTsx = impl === 'tsx' || !launchersCompiled;
  const launcher = (name: string): string[] =>
    viaTsx ? ['--import', 'tsx', join(serversDir, `${name}.ts`)] : [join(BUILD, 'servers', `${name}.js`)];

  return {
    shoalImpl: shoalCli ? 'dist' : impl,
    shoalNote: shoalCli
      ? `the CLI: node bin/shoal.js start (dist/${stale.length > 0 ? `, WARNING: older than ${stale.length} src files` : ''})`
      : note,
    shoalCli,
    shoal: (port, logLevel) =>
      shoalCli
        ? [
            join(REPO, 'bin/shoal.js'),
            'start',
            '--host',
            '127.0.0.1',
            '--port',
            String(port),
            '--ws-port',
            '0',
            '--http-port',
            '0',
            '--log-level',
            logLevel === 'silent' ? 'warn' : logLevel,
          ]
        : [...launcher('shoal-server'), '--impl', implDir, '--port', String(port), '--log-level', logLevel],
    aedes: (port) => [...launcher('aedes-server'), '--port', String(port)],
    implDir,
    script: launcher,
  };
}

// ---- processes ---------------------------------------------------------------------------------------

/** The soft and hard RLIMIT_NOFILE of this process, from /proc/self/limits. */
export function openFileLimits(): { soft: number; hard: number } {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = (line ?? '').split(/\s{2,}/).slice(1, 3);
  const num = (s: string | undefined): number => (s === 'unlimited' ? Number.POSITIVE_INFINITY : Number(s));
  return { soft: num(soft), hard: num(hard) };
}

export interface SpawnPrefix {
  /** Raise the soft open-files limit to the hard one (prlimit) when it is lower. */
  raiseNofile: boolean;
  /** `taskset -c <cpus>` for this process, if set. */
  cpus?: string;
}

/** command + args, wrapped in prlimit/taskset as asked. The exec'd process keeps the PID. */
export function wrapCommand(command: string, args: string[], prefix: SpawnPrefix): [string, string[]] {
  let cmd = command;
  let argv = args;
  if (prefix.cpus !== undefined) {
    argv = ['-c', prefix.cpus, cmd, ...argv];
    cmd = 'taskset';
  }
  if (prefix.raiseNofile) {
    const { soft, hard } = openFileLimits();
    if (soft < hard && Number.isFinite(hard)) {
      argv = [`--nofile=${hard}:${hard}`, cmd, ...argv];
      cmd = 'prlimit';
    }
  }
  return [cmd, argv];
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Resolves once a TCP connection to host:port succeeds; rejects after `timeoutMs`. */
export async function waitAccepting(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; attempt < 1000; attempt++) {
    if (!alive()) throw new Error('process exited before accepting connections');
    const ok = await new Promise<boolean>((done) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => {
        s.destroy();
        done(false);
      }, 500);
      s.once('connect', () => {
        clearTimeout(t);
        s.destroy();
        done(true);
      });
      s.once('error', () => {
        clearTimeout(t);
        done(false);
      });
    });
    if (ok) return;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing accepted connections on 127.0.0.1:${port} within ${timeoutMs} ms`);
}

/** Resident set size of a process in KB (VmRSS), or NaN when it is gone. */
export function rssKB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? Number.NaN : Number(m[1]);
  } catch {
    return Number.NaN;
  }
}

const CLK_TCK = 100;

/** CPU time (user + system, all threads) of a process in ms, or NaN when it is gone. */
export function cpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start at field 3.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** Keeps the last `max` characters of a stream. */
class Tail {
  text = '';
  constructor(private readonly max: number) {}
  push(chunk: Buffer | string): void {
    this.text += chunk.toString();
    if (this.text.length > this.max * 2) this.text = this.text.slice(-this.max);
  }
  get value(): string {
    return this.text.length > this.max ? this.text.slice(-this.max) : this.text;
  }
}

/** Broker processes not yet stopped, so an interrupted run can take them down (see killLiveBrokers). */
const liveBrokers = new Set<ChildProcess>();

/** SIGKILLs every broker process this module started and has not stopped yet. */
export function killLiveBrokers(): void {
  for (const child of liveBrokers) child.kill('SIGKILL');
  liveBrokers.clear();
}

export interface BrokerExit {
  code: number | null;
  signal: string | null;
  /** The launcher's `bench.exit` line (Shoal, Aedes), parsed. */
  stats?: Record<string, unknown>;
  stdout: string;
  stderr: string;
  /** Exited before we asked it to. */
  crashed: boolean;
}

/** A server process started by startServerProcess (a broker, a cluster node, a redis-server). */
export interface RunningServer {
  name: string;
  pid: number;
  port: number;
  /** How it was started (command line), for logs. */
  command: string;
  rssKB(): number;
  cpuMs(): number;
  alive(): boolean;
  /** The output so far (tails of stdout and stderr). */
  output(): { stdout: string; stderr: string };
  stop(): Promise<BrokerExit>;
}

export interface RunningBroker extends RunningServer {
  name: BrokerName;
}

export interface StartOptions {
  launchers: Launchers;
  /** Temp directory for the Mosquitto config. */
  workDir: string;
  prefix: SpawnPrefix;
  shoalLogLevel: string;
  startTimeoutMs: number;
  /** For 'shoal-base': the compiled tree (dist/) of the commit compared against. */
  shoalBase?: string;
}

/**
 * Node flags for the Shoal process under test, from BENCH_SHOAL_NODE_FLAGS (space-separated): a
 * profile or a GC trace of the broker while the load runs, e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`
 * or `--trace-gc`. Empty by default: the figures are of the broker as operators run it.
 */
export function shoalNodeFlags(): string[] {
  return (process.env.BENCH_SHOAL_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
}

export async function startBroker(name: BrokerName, options: StartOptions): Promise<RunningBroker> {
  const port = await freePort();
  let command: string;
  let args: string[];
  let redis: { url: string; stop(): Promise<unknown> } | undefined;
  switch (name) {
    case 'shoal':
      command = process.execPath;
      args = [...shoalNodeFlags(), ...options.launchers.shoal(port, options.shoalLogLevel)];
      break;
    case 'shoal-base': {
      if (options.shoalBase === undefined) throw new Error('shoal-base needs --shoal-base DIR');
      command = process.execPath;
      args = options.launchers.shoal(port, options.shoalLogLevel);
      const at = args.indexOf('--impl');
      if (at < 0) throw new Error('shoal-base needs the launcher (not --shoal-cli)');
      args[at + 1] = options.shoalBase;
      break;
    }
    case 'shoal-disk':
    case 'shoal-disk-always': {
      const dir = join(options.workDir, `${name}-${port}`);
      mkdirSync(dir, { recursive: true });
      const sync = name === 'shoal-disk' ? 'batch' : 'always';
      command = process.execPath;
      args = options.launchers.shoal(port, options.shoalLogLevel);
      if (options.launchers.shoalCli) {
        const conf = join(dir, 'shoal.json');
        writeFileSync(conf, JSON.stringify({ persistence: { dir: join(dir, 'data'), sync } }));
        args.push('--config', conf);
      } else args.push('--data-dir', join(dir, 'data'), '--sync', sync);
      break;
    }
    case 'shoal-redis': {
      const { startRedis } = await import('./redis.js');
      redis = await startRedis({
        workDir: options.workDir,
        prefix: options.prefix,
        startTimeoutMs: options.startTimeoutMs,
      });
      command = process.execPath;
      args = [
        ...shoalNodeFlags(),
        ...options.launchers.shoal(port, options.shoalLogLevel),
        '--redis',
        redis.url,
      ];
      break;
    }
    case 'aedes':
      command = process.execPath;
      args = options.launchers.aedes(port);
      break;
    case 'mosquitto':
    case 'mosquitto-disk': {
      const dir = join(options.workDir, `${name}-${port}`);
      mkdirSync(dir, { recursive: true });
      const conf = join(dir, 'mosquitto.conf');
      const settings =
        name === 'mosquitto'
          ? MOSQUITTO_SETTINGS
          : [
              ...MOSQUITTO_SETTINGS.filter((l) => l !== 'persistence false'),
              'persistence true',
              `persistence_location ${dir}/`,
            ];
      writeFileSync(conf, [`listener ${port} 127.0.0.1`, ...settings, ''].join('\n'));
      command = MOSQUITTO_BIN;
      args = ['-c', conf];
      break;
    }
  }
  let server: RunningServer;
  try {
    server = await startServerProcess({
      name,
      command,
      args,
      port,
      prefix: options.prefix,
      startTimeoutMs: options.startTimeoutMs,
    });
  } catch (err) {
    await redis?.stop();
    throw err;
  }
  if (redis === undefined) return { ...server, name };
  const own = redis;
  return {
    ...server,
    name,
    stop: async () => {
      const exit = await server.stop();
      await own.stop();
      return exit;
    },
  };
}

export interface ServerProcessOptions {
  /** For messages. */
  name: string;
  command: string;
  args: string[];
  /** The TCP port it will listen on (127.0.0.1): started once it accepts connections there. */
  port: number;
  prefix: SpawnPrefix;
  startTimeoutMs: number;
  /** Working directory; default the repository. */
  cwd?: string;
}

/**
 * Spawns a server process, resolves once it accepts TCP connections on 127.0.0.1:port. stop()
 * sends SIGTERM, then SIGKILL after 3 s, by PID; every process not yet stopped is also in the set
 * killLiveBrokers() kills.
 */
export async function startServerProcess(o: ServerProcessOptions): Promise<RunningServer> {
  const { name, port } = o;
  const [cmd, argv] = wrapCommand(o.command, o.args, o.prefix);
  const child: ChildProcess = spawn(cmd, argv, { cwd: o.cwd ?? REPO, stdio: ['ignore', 'pipe', 'pipe'] });
  liveBrokers.add(child);
  const stdout = new Tail(64 * 1024);
  const stderr = new Tail(64 * 1024);
  child.stdout?.on('data', (c) => stdout.push(c));
  child.stderr?.on('data', (c) => stderr.push(c));
  let exited = false;
  let stopping = false;
  let exitInfo: { code: number | null; signal: string | null } = { code: null, signal: null };
  const exitedPromise = new Promise<void>((done) => {
    child.once('exit', (code, signal) => {
      liveBrokers.delete(child);
      exited = true;
      exitInfo = { code, signal };
      done();
    });
    child.once('error', (err) => {
      stderr.push(`spawn error: ${err.message}\n`);
      exited = true;
      done();
    });
  });
  const pid = child.pid ?? -1;
  const commandLine = [cmd, ...argv].join(' ');

  const stop = async (): Promise<BrokerExit> => {
    const crashed = exited && !stopping;
    stopping = true;
    if (!exited) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exitedPromise;
      clearTimeout(t);
    }
    // Let the pipes drain.
    await new Promise((r) => setTimeout(r, 20));
    const out = stdout.value;
    let stats: Record<string, unknown> | undefined;
    for (const line of out.split('\n')) {
      if (!line.includes('"bench.exit"')) continue;
      try {
        stats = JSON.parse(line) as Record<string, unknown>;
      } catch {
        // not ours
      }
    }
    return { ...exitInfo, stats, stdout: out, stderr: stderr.value, crashed };
  };

  try {
    await waitAccepting(port, o.startTimeoutMs, () => !exited);
  } catch (err) {
    const exit = await stop();
    throw new Error(
      `${name} did not start: ${(err as Error).message}\ncommand: ${commandLine}\nstderr: ${exit.stderr.slice(-2000)}`,
    );
  }
  return {
    name,
    pid,
    port,
    command: commandLine,
    rssKB: () => rssKB(pid),
    cpuMs: () => cpuMs(pid),
    alive: () => !exited,
    output: () => ({ stdout: stdout.value, stderr: stderr.value }),
    stop,
  };
}

/** `mosquitto -h` first line, e.g. "mosquitto version 2.0.11". */
export async function mosquittoVersion(): Promise<string> {
  return new Promise((done) => {
    const p = spawn(MOSQUITTO_BIN, ['-h'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    p.stdout.on('data', (c) => {
      text += c;
    });
    p.stderr.on('data', (c) => {
      text += c;
    });
    const t = setTimeout(() => p.kill('SIGKILL'), 3000);
    p.once('exit', () => {
      clearTimeout(t);
      done(text.split('\n')[0]?.trim() || 'unknown');
    });
    p.once('error', () => done('not found'));
  });
}

export function aedesVersion(): string {
  try {
    return (
      JSON.parse(readFileSync(join(REPO, 'node_modules/aedes/package.json'), 'utf8')) as { version: string }
    ).version;
  } catch {
    return 'unknown';
  }
}
