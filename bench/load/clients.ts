/**
 * Load clients over raw `net` sockets. Everything sent is pre-encoded once (wire.ts); what is
 * received goes through a FrameScanner that reads fixed headers only. No per-message allocation
 * on the hot paths except the PUBACK batch (one buffer per received chunk) and, in the paced
 * latency publisher, one buffer per timer tick.
 */
import net from 'node:net';
import type { PublisherSpec, SubscriberSpec } from './messages.js';
import {
  connectPacket,
  FrameScanner,
  type FrameSink,
  type PublishTemplate,
  payloadOf,
  payloadStart,
  pubackBatch,
  publishTemplate,
  repeated,
  subscribePacket,
} from './wire.js';

/** Worker-wide state the clients report into. */
export interface ClientHub {
  /** True inside the measurement window: latency samples are recorded. */
  recording: boolean;
  latencies: Float64Array;
  latencyCount: number;
  latencyOverflow: number;
  /** With BENCH_LATENCY_SAMPLES: each sample's send time (ms, monotonic clock mod 10^6 s), beside it. */
  stamps?: Float64Array;
  unexpectedCloses: number;
  errors: string[];
  /** False once the worker is tearing down: closes are expected then. */
  live: boolean;
}

export function noteError(hub: ClientHub, message: string): void {
  if (hub.errors.length < 20) hub.errors.push(message);
}

/** Per-socket read buffer (what one read() may return). */
const READ_BUFFER_BYTES = 64 * 1024;

/** Body bytes a latency reader needs: topic length, topic (short in this bench), id, 8-byte stamp. */
const LATENCY_PREFIX = 2 + 128 + 2 + 8;
/** Body bytes a QoS 1 subscriber needs: topic length, topic, packet id. */
const QOS1_PREFIX = 2 + 128 + 2;

abstract class Client implements FrameSink {
  socket: net.Socket | undefined;
  protected readonly scanner: FrameScanner;
  private awaiting: { type: number; done: (code: number) => void } | null = null;

  constructor(
    protected readonly hub: ClientHub,
    readonly clientId: string,
    publishPrefix: number,
  ) {
    this.scanner = new FrameScanner(this, publishPrefix);
  }

  /** TCP connect, CONNECT (keepalive 0; Clean Session unless `clean` is false), wait for CONNACK 0. */
  connect(host: string, port: number, timeoutMs: number, clean = true): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      // onread: the kernel copies into one buffer per socket, handed to us without a Buffer or
      // stream push per read (the 'data' event path costs several times more per read).
      const socket = net.connect({
        host,
        port,
        noDelay: true,
        onread: {
          buffer: Buffer.allocUnsafe(READ_BUFFER_BYTES),
          callback: (n: number, buf: Uint8Array): boolean => {
            try {
              this.receive(buf as Buffer, n);
            } catch (err) {
              noteError(this.hub, `${this.clientId}: ${(err as Error).message}`);
              socket.destroy();
            }
            return true;
          },
        },
      });
      this.socket = socket;
      const timer = setTimeout(() => {
        reject(new Error(`${this.clientId}: no CONNACK within ${timeoutMs} ms`));
        socket.destroy();
      }, timeoutMs);
      socket.on('error', (err) => {
        noteError(this.hub, `${this.clientId}: ${err.message}`);
        reject(err);
      });
      socket.on('close', () => {
        clearTimeout(timer);
        if (this.hub.live) {
          this.hub.unexpectedCloses++;
          noteError(this.hub, `${this.clientId}: connection closed by the broker`);
        }
        this.closed();
        reject(new Error(`${this.clientId}: closed during setup`));
      });
      socket.once('connect', () => socket.write(connectPacket(this.clientId, 0, clean)));
      this.awaiting = {
        type: 2,
        done: (code) => {
          clearTimeout(timer);
          if (code === 0) resolve();
          else reject(new Error(`${this.clientId}: CONNACK return code ${code}`));
        },
      };
    });
  }

  protected receive(chunk: Buffer, length: number): void {
    this.scanner.push(chunk, length);
  }

  /** SUBSCRIBE one filter, wait for SUBACK with a granted QoS. */
  subscribe(filter: string, qos: 0 | 1, timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.clientId}: no SUBACK within ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.awaiting = {
        type: 9,
        done: (code) => {
          clearTimeout(timer);
          if (code <= 2) resolve();
          else reject(new Error(`${this.clientId}: SUBACK refused (0x${code.toString(16)})`));
        },
      };
      this.socket!.write(subscribePacket(filter, qos));
    });
  }

  onControl(first: number, buf: Buffer, body: number, _remaining: number): void {
    const type = first >> 4;
    if (type === 4) {
      this.onPuback((buf[body] << 8) | buf[body + 1]);
      return;
    }
    const awaiting = this.awaiting;
    if (awaiting !== null && awaiting.type === type) {
      this.awaiting = null;
      // CONNACK: flags, return code. SUBACK: packet id (2), first granted QoS.
      awaiting.done(type === 2 ? buf[body + 1] : buf[body + 2]);
    }
  }

  abstract onPublish(first: number, buf: Buffer, body: number, remaining: number): void;

  protected onPuback(_id: number): void {}
  protected closed(): void {}

  /** RST rather than FIN: no TIME_WAIT left behind. */
  destroy(): void {
    const s = this.socket;
    if (s === undefined || s.destroyed) return;
    try {
      s.resetAndDestroy();
    } catch {
      s.destroy();
    }
  }
}

// ---- subscribers ---------------------------------------------------------------------------------

export class Subscriber extends Client {
  received = 0;
  private readonly qos1: boolean;
  private readonly latency: boolean;
  private acks = new Uint16Array(4096);
  private ackCount = 0;
  private ackTimer: NodeJS.Timeout | undefined;
  private now = 0n;

  constructor(
    hub: ClientHub,
    readonly spec: SubscriberSpec,
  ) {
    super(hub, spec.clientId, spec.latency ? LATENCY_PREFIX : spec.qos === 1 ? QOS1_PREFIX : 0);
    this.qos1 = spec.qos === 1;
    this.latency = spec.latency;
  }

  protected override receive(chunk: Buffer, length: number): void {
    if (this.latency) this.now = process.hrtime.bigint();
    this.scanner.push(chunk, length);
    if (this.ackCount === 0) return;
    const delay = this.spec.ackDelayMs ?? 0;
    if (delay === 0) {
      this.flushAcks();
      return;
    }
    // A consumer `delay` ms away: what this read called for is acknowledged that much later (the
    // PUBACKs of reads within one delay go out together).
    if (this.ackTimer === undefined) this.ackTimer = setTimeout(() => this.flushAcks(), delay);
  }

  /** One write for every PUBACK due. */
  private flushAcks(): void {
    this.ackTimer = undefined;
    if (this.ackCount === 0 || this.socket === undefined || this.socket.destroyed) return;
    this.socket.write(pubackBatch(this.acks, this.ackCount));
    this.ackCount = 0;
  }

  onPublish(first: number, buf: Buffer, body: number, _remaining: number): void {
    this.received++;
    if (this.qos1 && (first & 0x06) !== 0) {
      const topicLen = (buf[body] << 8) | buf[body + 1];
      const at = body + 2 + topicLen;
      if (this.ackCount === this.acks.length) {
        const bigger = new Uint16Array(this.acks.length * 2);
        bigger.set(this.acks);
        this.acks = bigger;
      }
      this.acks[this.ackCount++] = (buf[at] << 8) | buf[at + 1];
    }
    if (this.latency && this.hub.recording) {
      const hub = this.hub;
      const stamp = buf.readBigUInt64BE(payloadStart(first, buf, body));
      if (hub.latencyCount < hub.latencies.length) {
        if (hub.stamps !== undefined) hub.stamps[hub.latencyCount] = Number(stamp % 1_000_000_000_000n) / 1e6;
        hub.latencies[hub.latencyCount++] = Number(this.now - stamp) / 1e6;
      } else hub.latencyOverflow++;
    }
  }
}

// ---- publishers ----------------------------------------------------------------------------------

/** Batches a flooding publisher writes per event-loop turn before yielding (bounds each turn). */
const FLOOD_WRITES_PER_TURN = 8;
/** A paced publisher skips a tick while this much is queued in its socket (broker not reading). */
const PACED_MAX_QUEUED = 4 * 1024 * 1024;

export class Publisher extends Client {
  sent = 0;
  acked = 0;
  skipped = 0;
  private running = false;
  private waitingDrain = false;
  private readonly template: PublishTemplate;
  /** flood: `batch` copies of the packet. */
  private readonly batch: Buffer;
  private readonly perBatch: number;
  private ackedIds = new Uint16Array(1024);
  private ackedCount = 0;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0n;

  constructor(
    hub: ClientHub,
    readonly spec: PublisherSpec,
  ) {
    super(hub, spec.clientId, 0);
    this.template = publishTemplate(spec.topic, payloadOf(spec.payloadSize), spec.qos);
    this.perBatch = spec.mode === 'flood' ? (spec.batch ?? 100) : 1;
    this.batch = spec.mode === 'flood' ? repeated(this.template.bytes, this.perBatch) : this.template.bytes;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const socket = this.socket!;
    socket.on('drain', this.onDrain);
    switch (this.spec.mode) {
      case 'flood':
        this.pump();
        break;
      case 'window':
        this.sendWindow();
        break;
      case 'paced':
        this.startedAt = process.hrtime.bigint();
        this.timer = setInterval(this.tick, this.spec.tickMs ?? 2);
        break;
    }
  }

  stop(): void {
    this.running = false;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  private readonly onDrain = (): void => {
    if (this.waitingDrain) {
      this.waitingDrain = false;
      this.pump();
    }
  };

  /** flood: a bounded number of batch writes, then yield; on backpressure wait for 'drain'. */
  private readonly pump = (): void => {
    if (!this.running || this.waitingDrain) return;
    const socket = this.socket!;
    if (socket.destroyed) return;
    for (let k = 0; k < FLOOD_WRITES_PER_TURN; k++) {
      this.sent += this.perBatch;
      if (!socket.write(this.batch)) {
        this.waitingDrain = true;
        return;
      }
    }
    setImmediate(this.pump);
  };

  /** window: the first `window` packets, ids 1..window, in one write. */
  private sendWindow(): void {
    const window = this.spec.window ?? 100;
    const { bytes, idOffset } = this.template;
    const out = repeated(bytes, window);
    for (let i = 0; i < window; i++) {
      const id = i + 1;
      out[i * bytes.length + idOffset] = id >> 8;
      out[i * bytes.length + idOffset + 1] = id & 0xff;
    }
    this.sent += window;
    this.socket!.write(out);
  }

  protected override onPuback(id: number): void {
    this.acked++;
    if (this.ackedCount === this.ackedIds.length) {
      const bigger = new Uint16Array(this.ackedIds.length * 2);
      bigger.set(this.ackedIds);
      this.ackedIds = bigger;
    }
    this.ackedIds[this.ackedCount++] = id;
  }

  protected override receive(chunk: Buffer, length: number): void {
    this.scanner.push(chunk, length);
    const n = this.ackedCount;
    if (n === 0) return;
    this.ackedCount = 0;
    if (!this.running || this.socket!.destroyed) return;
    // Each acknowledged id is free again: one new PUBLISH per PUBACK, all in one write.
    const { bytes, idOffset } = this.template;
    const len = bytes.length;
    const out = Buffer.allocUnsafe(len * n);
    for (let i = 0; i < n; i++) {
      const o = i * len;
      bytes.copy(out, o);
      const id = this.ackedIds[i];
      out[o + idOffset] = id >> 8;
      out[o + idOffset + 1] = id & 0xff;
    }
    this.sent += n;
    this.socket!.write(out);
  }

  /** paced: send what the schedule says is due, stamped with the send time. */
  private readonly tick = (): void => {
    if (!this.running) return;
    const socket = this.socket!;
    if (socket.destroyed) return;
    const now = process.hrtime.bigint();
    const rate = this.spec.rate ?? 5000;
    const due = Math.floor((Number(now - this.startedAt) / 1e9) * rate) - this.sent - this.skipped;
    if (due <= 0) return;
    // A stalled timer (a busy machine) is caught up, but never with more than 1 s worth at once.
    const n = Math.min(due, rate);
    if (socket.writableLength > PACED_MAX_QUEUED) {
      this.skipped += n;
      return;
    }
    const { bytes, payloadOffset } = this.template;
    const len = bytes.length;
    const out = Buffer.allocUnsafe(len * n);
    for (let i = 0; i < n; i++) {
      const o = i * len;
      bytes.copy(out, o);
      out.writeBigUInt64BE(now, o + payloadOffset);
    }
    this.sent += n;
    socket.write(out);
  };

  onPublish(): void {}

  protected override closed(): void {
    this.stop();
  }
}
