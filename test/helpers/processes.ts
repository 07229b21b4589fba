import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnTrackedOptions extends Omit<SpawnOptions, 'stdio' | 'detached'> {
  /** Name used in error messages; defaults to the command. */
  name?: string;
  /** How much combined stdout+stderr to keep (the most recent part), in bytes. Default 64 KiB. */
  outputLimit?: number;
}

export interface TrackedProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly name: string;
  /** Resolves once the process has exited (never rejects). */
  readonly exited: Promise<ExitStatus>;
  /** True until the process has exited. */
  readonly running: boolean;
  /**
   * Resolves with the match once the retained output (stdout and stderr interleaved) matches `regex`.
   * Rejects if the process closes its output without a match or `timeoutMs` elapses; the error
   * message carries the output tail.
   */
  waitForOutput(regex: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Sends `signal` to the PID if the process is still running. Returns whether a signal was sent. */
  kill(signal?: NodeJS.Signals): boolean;
  /** SIGTERM, wait up to `timeoutMs` for exit, then SIGKILL and wait for exit. */
  terminate(timeoutMs?: number): Promise<ExitStatus>;
  /** The retained tail of the combined output. */
  output(): string;
}

const DEFAULT_OUTPUT_LIMIT = 64 * 1024;
const registry = new Map<number, TrackedProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // 'exit' handlers must be synchronous: send SIGKILL by PID to whatever is still running.
  process.on('exit', () => {
    for (const tracked of registry.values()) {
      if (tracked.running) {
        try {
          process.kill(tracked.pid, 'SIGKILL');
        } catch {
          // Already gone.
        }
      }
    }
  });
}

/** PIDs of the tracked processes that are still running. */
export function trackedPids(): number[] {
  return [...registry.values()].filter((p) => p.running).map((p) => p.pid);
}

/** Ends every still-running process spawned through spawnTracked (by PID), escalating to SIGKILL. */
export async function killAllTracked(timeoutMs = 5_000): Promise<void> {
  await Promise.all([...registry.values()].map((p) => p.terminate(timeoutMs)));
}

/** True if a process with this PID exists (signal 0 probe). */
export function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM means it exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Spawns `cmd args` with piped stdout/stderr, tracks it in a registry (ended by killAllTracked and,
 * with SIGKILL, when this process exits). Resolves once the OS has started the process; rejects
 * (with the errno code in the message, e.g. ENOENT) if it could not be started.
 */
export async function spawnTracked(
  cmd: string,
  args: readonly string[] = [],
  opts: SpawnTrackedOptions = {},
): Promise<TrackedProcess> {
  const { name = cmd, outputLimit = DEFAULT_OUTPUT_LIMIT, ...spawnOpts } = opts;
  installExitHook();

  const child = spawn(cmd, args, { ...spawnOpts, stdio: ['ignore', 'pipe', 'pipe'] });

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      child.off('spawn', onSpawn);
      const e = new Error(`spawnTracked: could not start ${name} (${cmd}): ${err.code ?? err.message}`, {
        cause: err,
      }) as NodeJS.ErrnoException;
      e.code = err.code;
      reject(e);
    };
    const onSpawn = () => {
      child.off('error', onError);
      resolve();
    };
    child.once('error', onError);
    child.once('spawn', onSpawn);
  });

  const pid = child.pid as number;
  const events = new EventEmitter();
  events.setMaxListeners(0);
  let buffer = '';
  let closed = false;
  let status: ExitStatus | null = null;

  const onData = (chunk: Buffer) => {
    buffer += chunk.toString('utf8');
    if (buffer.length > outputLimit) buffer = buffer.slice(buffer.length - outputLimit);
    events.emit('data');
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  // Errors after spawn (e.g. a failed kill) must not crash the test process.
  child.on('error', (err) => {
    buffer += `\n[spawnTracked: child error: ${err.message}]\n`;
  });

  const exited = new Promise<ExitStatus>((resolve) => {
    child.once('exit', (code, signal) => {
      status = { code, signal };
      registry.delete(pid);
      resolve(status);
    });
  });
  child.once('close', () => {
    closed = true;
    events.emit('close');
  });

  const describe = () => `${name} (pid ${pid})`;
  const tail = (n = 4_000) => (buffer.length > n ? `…${buffer.slice(-n)}` : buffer);

  const tracked: TrackedProcess = {
    child,
    pid,
    name,
    exited,
    get running() {
      return status === null;
    },
    output: () => buffer,
    waitForOutput(regex, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = buffer.match(regex);
          if (m) {
            cleanup();
            resolve(m);
            return true;
          }
          return false;
        };
        const onClose = () => {
          if (check()) return;
          cleanup();
          const how = status ? `exited (code ${status.code}, signal ${status.signal})` : 'closed its output';
          reject(new Error(`${describe()} ${how} before printing ${regex}. Output:\n${tail()}`));
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(
            new Error(`${describe()} did not print ${regex} within ${timeoutMs} ms. Output:\n${tail()}`),
          );
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          events.off('data', check);
          events.off('close', onClose);
        };
        if (check()) return;
        if (closed) {
          onClose();
          return;
        }
        events.on('data', check);
        events.on('close', onClose);
      });
    },
    kill(signal = 'SIGTERM') {
      if (status !== null) return false;
      try {
        process.kill(pid, signal);
        return true;
      } catch {
        return false;
      }
    },
    async terminate(timeoutMs = 5_000) {
      if (status !== null) return status;
      tracked.kill('SIGTERM');
      let timer: NodeJS.Timeout | undefined;
      const timedOut = await Promise.race([
        exited.then(() => false),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(true), timeoutMs);
        }),
      ]);
      clearTimeout(timer);
      if (timedOut) tracked.kill('SIGKILL');
      return exited;
    },
  };

  registry.set(pid, tracked);
  return tracked;
}
