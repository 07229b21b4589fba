/**
 * A reconnect-storm client process for bench/storm.ts, driven over IPC. It holds `count` persistent
 * MQTT 3.1.1 clients (Clean Session 0, one QoS 1 subscription each to `storm/<id>`), raw sockets with
 * the shared wire encoder, so the broker side, not the load, takes the CPU.
 *
 *   { type: 'open', host, port, first, count, concurrency }  connect and subscribe all; answers 'opened'
 *   { type: 'report' }                                        answers 'report' with what happened since
 *
 * After 'open', a client whose connection closes reconnects as a real client does: after 50-250 ms,
 * again and again while the address refuses; a CONNACK that refuses (3: Server unavailable, which a
 * busy node answers) is "come back": it tries again after 250-750 ms. Each client records when it
 * got back in (Date.now(), comparable across processes), whether its session was still there
 * (Session Present), and when the message queued for it meanwhile arrived (PUBACKed).
 */
import net from 'node:net';
import { connectPacket, FrameScanner, type FrameSink, subscribePacket } from './wire.js';

interface Open {
  type: 'open';
  host: string;
  port: number;
  first: number;
  count: number;
  concurrency: number;
}

export interface StormReport {
  type: 'report';
  opened: number;
  /** Clients whose connection dropped after they were in (the storm's clients). */
  dropped: number;
  /** Clients back in after their first drop, and when the last of them got in. */
  resumed: number;
  resumedAt: number[];
  /** Back in, but Session Present was 0: the session was lost. */
  sessionsLost: number;
  /** Messages on storm/<id> received after the drop, the first of each client only, and when. */
  received: number;
  receivedAt: number[];
  /** Messages received again by a client that had its message already (DUP or not). */
  duplicates: number;
  /** CONNACKs that refused, by return code; connect attempts refused by the address. */
  refusedBy: Record<string, number>;
  connectErrors: number;
  errors: string[];
}

const HARD_DEADLINE_MS = 10 * 60_000;
setTimeout(() => process.exit(3), HARD_DEADLINE_MS).unref();
process.on('disconnect', () => process.exit(0));

const report: StormReport = {
  type: 'report',
  opened: 0,
  dropped: 0,
  resumed: 0,
  resumedAt: [],
  sessionsLost: 0,
  received: 0,
  receivedAt: [],
  duplicates: 0,
  refusedBy: {},
  connectErrors: 0,
  errors: [],
};

function note(err: string): void {
  if (report.errors.length < 20) report.errors.push(err);
}

const jitter = (lo: number, hi: number): number => lo + Math.floor(Math.random() * (hi - lo));

/** Body bytes a PUBLISH needs readable: topic length, `storm/<n>` and the packet id. */
const PUBLISH_PREFIX = 64;

class StormClient implements FrameSink {
  private socket: net.Socket | undefined;
  /** 'first': the initial connect; 'back': reconnecting after a drop. */
  private phase: 'first' | 'back' = 'first';
  private resumed = false;
  private got = false;
  private subscribed = false;

  constructor(
    private readonly o: Open,
    private readonly id: string,
    private readonly topic: string,
    private readonly opened: () => void,
  ) {}

  connect(): void {
    const socket = net.connect({ host: this.o.host, port: this.o.port, noDelay: true });
    this.socket = socket;
    // A scanner per connection: nothing of a dropped connection carries over to the next.
    const frames = new FrameScanner(this, PUBLISH_PREFIX);
    socket.once('connect', () => socket.write(connectPacket(this.id, 0, false)));
    socket.on('data', (chunk: Buffer) => {
      if (this.socket === socket) frames.push(chunk);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED' || err.code === 'ECONNRESET') report.connectErrors++;
      else note(`${this.id}: ${err.message}`);
    });
    socket.once('close', () => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      // The first connect failed before it subscribed: again (counted in connectErrors).
      if (!this.subscribed) {
        setTimeout(() => this.connect(), jitter(50, 250));
        return;
      }
      if (this.phase === 'first') report.dropped++;
      this.phase = 'back';
      // Back in already and had its message: a later drop is not part of the storm.
      if (this.resumed && this.got) return;
      setTimeout(() => this.connect(), jitter(50, 250));
    });
  }

  onControl(first: number, buf: Buffer, body: number): void {
    const socket = this.socket;
    if (socket === undefined) return;
    const type = first >> 4;
    if (type === 2) {
      const rc = buf[body + 1];
      if (rc !== 0) {
        report.refusedBy[rc] = (report.refusedBy[rc] ?? 0) + 1;
        // Told to come back: close, and try again a little later.
        this.socket = undefined;
        socket.destroy();
        setTimeout(() => this.connect(), jitter(250, 750));
        return;
      }
      if (this.phase === 'first') {
        socket.write(subscribePacket(this.topic, 1, 1));
        return;
      }
      // Counted once per client: the first time it got back in.
      if (this.resumed) return;
      this.resumed = true;
      report.resumed++;
      report.resumedAt.push(Date.now());
      if ((buf[body] & 1) === 0) report.sessionsLost++;
      return;
    }
    if (type === 9 && this.phase === 'first' && !this.subscribed) {
      this.subscribed = true;
      this.opened();
    }
  }

  onPublish(first: number, buf: Buffer, body: number): void {
    const socket = this.socket;
    if (socket === undefined) return;
    if ((first & 0x06) !== 0) {
      const topicLen = buf.readUInt16BE(body);
      const id = buf.readUInt16BE(body + 2 + topicLen);
      socket.write(Buffer.from([0x40, 0x02, id >> 8, id & 0xff]));
    }
    if (this.phase !== 'back') return;
    if (this.got) report.duplicates++;
    else {
      this.got = true;
      report.received++;
      report.receivedAt.push(Date.now());
    }
  }
}

function open(o: Open): void {
  let next = 0;
  let inFlight = 0;
  const launch = (): void => {
    while (inFlight < o.concurrency && next < o.count) {
      const n = o.first + next++;
      inFlight++;
      new StormClient(o, `storm-${n}`, `storm/${n}`, () => {
        inFlight--;
        report.opened++;
        if (report.opened === o.count) process.send?.({ type: 'opened', opened: report.opened });
        else launch();
      }).connect();
    }
  };
  launch();
}

/** What the runner sends (WorkerProcess<FromStorm, ToStorm>). */
export type ToStorm = Open | { type: 'report' } | { type: 'exit' };
export type FromStorm = { type: 'ready' } | { type: 'opened'; opened: number } | StormReport;

process.on('message', (m: ToStorm) => {
  if (m.type === 'open') open(m);
  else if (m.type === 'report') {
    process.send?.(report);
    report.errors = [];
  } else if (m.type === 'exit') process.exit(0);
});
process.send?.({ type: 'ready' });
