/**
 * A load generator process, driven by bench/run.ts over IPC (see messages.ts):
 *
 *   job   -> connect every client (CONNECT/CONNACK, SUBSCRIBE/SUBACK), then 'ready'
 *   start -> publishers run; after warmupMs the window opens, after durationMs it closes; after
 *            tailMs more publishers stop and the 'result' goes back
 *   exit  -> sockets destroyed, process exits
 *
 * An idle job instead opens `count` bare connections on 'start' and holds them until 'exit'.
 * The process exits by itself when its parent goes away and after a hard deadline, so nothing
 * outlives a broken run.
 */
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { type ClientHub, noteError, Publisher, Subscriber } from './clients.js';
import type {
  FromWorker,
  IdleResult,
  IdleSpec,
  Job,
  LatencySummary,
  LoadResult,
  ToWorker,
} from './messages.js';
import { connectPacket } from './wire.js';

/** Nothing a worker does takes longer than this; afterwards it exits regardless. */
const HARD_DEADLINE_MS = 5 * 60_000;
setTimeout(() => {
  console.error('load worker: hard deadline reached, exiting');
  process.exit(3);
}, HARD_DEADLINE_MS).unref();

const hub: ClientHub = {
  recording: false,
  latencies: new Float64Array(1 << 20),
  latencyCount: 0,
  stamps: process.env.BENCH_LATENCY_SAMPLES ? new Float64Array(1 << 20) : undefined,
  latencyOverflow: 0,
  unexpectedCloses: 0,
  errors: [],
  live: true,
};

let job: Job | undefined;
const publishers: Publisher[] = [];
const subscribers: Subscriber[] = [];
const idleSockets: net.Socket[] = [];

function send(message: FromWorker): void {
  process.send?.(message);
}

function fail(err: unknown): void {
  send({ type: 'failed', message: String((err as Error)?.stack ?? err) });
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: timed out after ${ms} ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

async function setup(j: Job): Promise<void> {
  job = j;
  for (const spec of j.subscribers) subscribers.push(new Subscriber(hub, spec));
  for (const spec of j.publishers) publishers.push(new Publisher(hub, spec));
  const t = j.setupTimeoutMs;
  // Subscribers first, so nothing published is missed; a few at a time to keep setup bounded.
  await withTimeout(
    Promise.all(
      subscribers.map(async (s) => {
        await s.connect(j.host, j.subscriberPort ?? j.port, t, s.spec.persistent !== true);
        await s.subscribe(s.spec.filter, s.spec.qos, t);
      }),
    ),
    t,
    'subscriber setup',
  );
  await withTimeout(Promise.all(publishers.map((p) => p.connect(j.host, j.port, t))), t, 'publisher setup');
}

interface Snapshot {
  ns: bigint;
  received: number;
  perSubscriber: number[];
  sent: number;
  acked: number;
  cpu: NodeJS.CpuUsage;
}

function snapshot(): Snapshot {
  let received = 0;
  let sent = 0;
  let acked = 0;
  const perSubscriber = subscribers.map((s) => s.received);
  for (const n of perSubscriber) received += n;
  for (const p of publishers) {
    sent += p.sent;
    acked += p.acked;
  }
  return { ns: process.hrtime.bigint(), received, perSubscriber, sent, acked, cpu: process.cpuUsage() };
}

function latencySummary(): LatencySummary | undefined {
  if (!subscribers.some((s) => s.spec.latency)) return undefined;
  const n = hub.latencyCount;
  if (hub.stamps !== undefined) {
    // BENCH_LATENCY_SAMPLES=PATH: every sample as `<sent ms> <latency ms>` in PATH.<pid>, to tell
    // one stall hitting a whole tick's burst from latency spread over messages (docs/benchmarks.md).
    const lines = [];
    for (let i = 0; i < n; i++) lines.push(`${hub.stamps[i].toFixed(3)} ${hub.latencies[i].toFixed(3)}`);
    writeFileSync(`${process.env.BENCH_LATENCY_SAMPLES}.${process.pid}`, lines.join('\n'));
  }
  const xs = hub.latencies.subarray(0, n).slice().sort();
  const at = (p: number): number =>
    n === 0 ? Number.NaN : xs[Math.min(n - 1, Math.floor((p / 100) * (n - 1)))];
  return {
    count: n,
    p50Ms: at(50),
    p90Ms: at(90),
    p99Ms: at(99),
    p999Ms: at(99.9),
    maxMs: n === 0 ? Number.NaN : xs[n - 1],
    overflow: hub.latencyOverflow,
  };
}

/** The drain ends once nothing has moved for this long (a pause shorter than this is not an end). */
const DRAIN_STILL_MS = 1000;

function run(warmupMs: number, durationMs: number, tailMs: number, drainMs = 0, timelineMs = 0): void {
  for (const p of publishers) p.start();
  let begin: Snapshot | undefined;
  let end: Snapshot | undefined;
  const timeline: number[] = [];
  let timelineTimer: NodeJS.Timeout | undefined;
  if (timelineMs > 0) {
    let last = 0;
    timelineTimer = setInterval(() => {
      const now = snapshot().received;
      timeline.push(now - last);
      last = now;
    }, timelineMs);
  }
  setTimeout(() => {
    begin = snapshot();
    hub.recording = true;
  }, warmupMs);
  setTimeout(() => {
    hub.recording = false;
    end = snapshot();
  }, warmupMs + durationMs);
  setTimeout(
    () => {
      for (const p of publishers) p.stop();
      if (begin === undefined || end === undefined) {
        fail(new Error('measurement window did not complete'));
        return;
      }
      const b = begin;
      const e = end;
      const report = (drainedMs?: number): void => {
        if (timelineTimer !== undefined) clearInterval(timelineTimer);
        const cpu = (e.cpu.user + e.cpu.system - b.cpu.user - b.cpu.system) / 1000;
        const last = snapshot();
        const result: LoadResult = {
          windowMs: Number(e.ns - b.ns) / 1e6,
          received: e.received - b.received,
          perSubscriber: e.perSubscriber.map((n, i) => n - b.perSubscriber[i]),
          sent: e.sent - b.sent,
          acked: e.acked - b.acked,
          receivedTotal: last.received,
          sentTotal: last.sent,
          ackedTotal: last.acked,
          timeline: timelineMs > 0 ? timeline : undefined,
          drainedMs,
          skipped: publishers.reduce((sum, p) => sum + p.skipped, 0),
          latency: latencySummary(),
          cpuMs: cpu,
          cpuSystemMs: (e.cpu.system - b.cpu.system) / 1000,
          unexpectedCloses: hub.unexpectedCloses,
          errors: hub.errors,
        };
        send({ type: 'result', result });
      };
      if (drainMs <= 0) {
        report();
        return;
      }
      // Drain: wait for the counts to stand still for 1 s, at most drainMs.
      const started = Date.now();
      let prev = snapshot();
      let still = Date.now();
      const poll = setInterval(() => {
        const now = snapshot();
        if (now.received !== prev.received || now.acked !== prev.acked) still = Date.now();
        prev = now;
        if (Date.now() - still >= DRAIN_STILL_MS || Date.now() - started >= drainMs) {
          clearInterval(poll);
          report(Date.now() - started);
        }
      }, 50);
    },
    warmupMs + durationMs + tailMs,
  );
}

// ---- idle connections ------------------------------------------------------------------------------

function openIdle(j: Job, spec: IdleSpec): Promise<IdleResult> {
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    let opened = 0;
    let failed = 0;
    let lastConnack = 0n;
    let maxConnectNs = 0n;
    let slowConnects = 0;
    const first = process.hrtime.bigint();
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      resolve({
        opened,
        failed,
        firstAttemptMs: Number(first) / 1e6,
        lastConnackMs: Number(lastConnack === 0n ? process.hrtime.bigint() : lastConnack) / 1e6,
        maxConnectMs: Number(maxConnectNs) / 1e6,
        slowConnects,
        errors: hub.errors,
      });
    };
    const deadline = setTimeout(() => {
      noteError(hub, `idle: only ${opened} of ${spec.count} connected within ${spec.timeoutMs} ms`);
      finish();
    }, spec.timeoutMs);

    const settle = (ok: boolean, startedNs: bigint): void => {
      inFlight--;
      if (ok) {
        opened++;
        lastConnack = process.hrtime.bigint();
        const took = lastConnack - startedNs;
        if (took > maxConnectNs) maxConnectNs = took;
        if (took > 1_000_000_000n) slowConnects++;
      } else failed++;
      if (opened + failed === spec.count) finish();
      else launch();
    };

    const portCursor = spec.localAddresses.map(() => spec.localPorts?.[0] ?? 0);
    const one = (n: number, startedNs = process.hrtime.bigint(), attempt = 0): void => {
      let localAddress: string | undefined;
      let localPort: number | undefined;
      if (spec.localAddresses.length > 0) {
        const a = n % spec.localAddresses.length;
        localAddress = spec.localAddresses[a];
        if (spec.localPorts !== undefined) {
          localPort = portCursor[a]++;
          if (localPort > spec.localPorts[1]) {
            noteError(hub, `idle ${n}: no source ports left on ${localAddress}`);
            settle(false, startedNs);
            return;
          }
        }
      }
      const socket = net.connect({ host: j.host, port: j.port, localAddress, localPort, noDelay: true });
      idleSockets.push(socket);
      let state: 'connecting' | 'open' | 'failed' | 'retried' = 'connecting';
      let got = 0;
      socket.once('connect', () => socket.write(connectPacket(`${spec.clientIdPrefix}${n}`)));
      socket.on('data', (chunk: Buffer) => {
        if (state !== 'connecting') return;
        // CONNACK is 20 02 00 rc; it arrives alone (nothing else is sent to an idle client).
        if (got === 0 && chunk[0] !== 0x20) {
          state = 'failed';
          noteError(hub, `idle ${n}: unexpected first byte 0x${chunk[0].toString(16)}`);
          settle(false, startedNs);
          return;
        }
        got += chunk.length;
        if (got >= 4) {
          const rc = chunk[chunk.length - 1];
          state = rc === 0 ? 'open' : 'failed';
          if (rc !== 0) noteError(hub, `idle ${n}: CONNACK return code ${rc}`);
          settle(rc === 0, startedNs);
        }
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (state === 'connecting' && err.code === 'EADDRINUSE' && localPort !== undefined && attempt < 100) {
          // That source port is taken (another socket, a TIME_WAIT): the next one.
          state = 'retried';
          one(n, startedNs, attempt + 1);
          return;
        }
        noteError(hub, `idle ${n}: ${err.message}`);
      });
      socket.on('close', () => {
        if (state === 'connecting') {
          state = 'failed';
          settle(false, startedNs);
        } else if (state === 'open' && hub.live) {
          hub.unexpectedCloses++;
          noteError(hub, `idle ${n}: closed by the broker`);
        }
      });
    };

    const launch = (): void => {
      while (!finished && inFlight < spec.concurrency && next < spec.count) {
        inFlight++;
        one(next++);
      }
    };
    launch();
  });
}

// ---- control -----------------------------------------------------------------------------------------

function exit(): void {
  hub.live = false;
  for (const c of [...publishers, ...subscribers]) c.destroy();
  // RST rather than FIN: no TIME_WAIT left behind holding ephemeral ports for the next trial.
  for (const s of idleSockets) {
    try {
      if (!s.destroyed) s.resetAndDestroy();
    } catch {
      s.destroy();
    }
  }
  // Let the destroys go out, then leave.
  setTimeout(() => process.exit(0), 50).unref();
}

process.on('disconnect', () => {
  hub.live = false;
  process.exit(0);
});

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'job':
      if (message.job.idle !== undefined) {
        job = message.job;
        send({ type: 'ready' });
        return;
      }
      setup(message.job).then(
        () => send({ type: 'ready' }),
        (err) => fail(err),
      );
      return;
    case 'start':
      if (job?.idle !== undefined) {
        openIdle(job, job.idle).then(
          (result) => send({ type: 'idle-done', result }),
          (err) => fail(err),
        );
        return;
      }
      run(message.warmupMs, message.durationMs, message.tailMs, message.drainMs, message.timelineMs);
      return;
    case 'exit':
      send({ type: 'status', unexpectedCloses: hub.unexpectedCloses, errors: hub.errors });
      exit();
      return;
  }
});
