/**
 * One client connection: bytes from the transport go through the decoder into the channel; bytes
 * from the channel are batched per event-loop turn, small packets copied together, and written in
 * one go. Owns the connect timeout, the keep-alive timer and input control: reading stops while an
 * async CONNECT step runs, while this client's own outbound buffer is over the high-water mark,
 * while a subscriber its QoS 1/2 messages go to is congested, and for the rest of the event-loop
 * turn after a large read (so one flooding publisher cannot starve writes and other clients).
 */
import type { PeerCertificate } from 'node:tls';
import { Channel, type ChannelOutput } from '../channel/channel.js';
import type { ChannelContext } from '../channel/context.js';
import type { TimerHandle } from '../clock.js';
import { type Packet, PacketDecoder, ProtocolError } from '../protocol/index.js';
import type { Transport, TransportEvents } from '../transport/types.js';

/** Connections with writes pending in this turn; flushed together in one nextTick. */
let flushQueue: Connection[] = [];
let flushScheduled = false;

/** How long a closing connection waits for the peer's FIN before the socket is destroyed. */
const CLOSE_GRACE_MS = 5_000;
/** closeWhen: the longest wait for what the close waits on (a store's last writes). */
const CLOSE_WAIT_MS = 2000;

/** Why reading is paused: any set bit pauses, the last cleared resumes. */
enum Pause {
  Held = 1,
  Slow = 2,
  Turn = 4,
  Throttled = 8,
}

/** A read at least this large makes the connection yield until the next turn. */
const YIELD_READ_BYTES = 16 * 1024;
/** Packets are copied into shared buffers of about this size before writing (fewer iovecs). */
const COALESCE_BYTES = 64 * 1024;
/** A payload at least this large is written as its own buffer, not copied. */
const LARGE_CHUNK = 8 * 1024;

let yielded: Connection[] = [];
/** The shared empty write list (never pushed to). */
const NONE: Buffer[] = [];
let resumeScheduled = false;

function resumeYielded(): void {
  const list = yielded;
  yielded = [];
  resumeScheduled = false;
  for (const c of list) c.endTurn();
}

function flushAll(): void {
  const queue = flushQueue;
  flushQueue = [];
  flushScheduled = false;
  for (const c of queue) c.flush();
}

export class Connection implements ChannelOutput {
  readonly channel: Channel;
  /** Told once the connection is gone (the broker stops counting it). */
  onClosed: ((connection: Connection) => void) | undefined;

  private readonly decoder: PacketDecoder;
  private pending: Buffer[] = NONE;
  private pendingBytes = 0;
  private queued = false;
  private ending = false;
  private gone = false;
  private paused = 0;
  private throttles = 0;
  /** Packets decoded while input is held or throttled, handled in order once it is neither. */
  private held: Packet[] | null = null;
  /** holdInput(true): an asynchronous CONNECT step or authorization is running. */
  private inputHeld = false;
  private keepAliveMs = 0;
  private lastActivity = 0;
  private timer: TimerHandle | undefined;
  private closedPromise: Promise<void> | undefined;
  private resolveClosed: (() => void) | undefined;

  constructor(
    private readonly transport: Transport,
    private readonly ctx: ChannelContext,
  ) {
    this.channel = new Channel(ctx, this);
    this.decoder = new PacketDecoder((p) => this.dispatch(p), {
      maxPacketSize: ctx.options.maxPacketSizeBytes,
    });
    this.lastActivity = ctx.clock.now();
    // A connection that sends no CONNECT in time is closed (MQTT 5 §3.1.4, step 1: a SHOULD without an id).
    this.timer = ctx.clock.setTimeout(() => this.connectTimedOut(), ctx.options.connectTimeoutMs);
    transport.bind(new Events(this));
  }

  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }

  get transportKind(): string {
    return this.transport.kind;
  }

  peerCertificate(): PeerCertificate | undefined {
    return this.transport.peerCertificate?.();
  }

  get bufferedBytes(): number {
    return this.pendingBytes + this.transport.bufferedBytes;
  }

  /** Resolves once the transport is closed (made on demand: most connections never need it). */
  get closed(): Promise<void> {
    if (this.closedPromise === undefined) {
      this.closedPromise = this.gone
        ? Promise.resolve()
        : new Promise((resolve) => {
            this.resolveClosed = resolve;
          });
    }
    return this.closedPromise;
  }

  /** @internal The transport's events (through Events). */
  onData(chunk: Buffer): void {
    this.lastActivity = this.ctx.clock.now();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.protocolFailure(err);
    }
    if (chunk.length >= YIELD_READ_BYTES && !this.gone) {
      // A flooding peer: let writes and other clients have the rest of this turn.
      this.pause(Pause.Turn);
      yielded.push(this);
      if (!resumeScheduled) {
        resumeScheduled = true;
        setImmediate(resumeYielded);
      }
    }
  }

  endTurn(): void {
    this.unpause(Pause.Turn);
  }

  private pause(reason: Pause): void {
    if (this.paused === 0 && !this.gone) this.transport.pause();
    this.paused |= reason;
  }

  private unpause(reason: Pause): void {
    if ((this.paused & reason) === 0) return;
    this.paused &= ~reason;
    if (this.paused === 0 && !this.gone) this.transport.resume();
  }

  /** Stops reading from this client until every returned release has been called. */
  throttle(): () => void {
    this.throttles++;
    this.pause(Pause.Throttled);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (--this.throttles === 0) {
        this.unpause(Pause.Throttled);
        this.handleHeld();
      }
    };
  }

  private dispatch(packet: Packet): void {
    if (this.gone || this.ending) return;
    // Throttled: the rest of a chunk already read waits too (a burst in one read stays bounded).
    if (this.held !== null || this.inputHeld || this.throttles > 0) {
      this.held ??= [];
      this.held.push(packet);
      return;
    }
    this.handle(packet);
  }

  private handle(packet: Packet): void {
    try {
      this.channel.handle(packet);
    } catch (err) {
      this.protocolFailure(err);
    }
  }

  /**
   * The socket closed while packets waited (throttled): a DISCONNECT among them still counts, so a
   * client that said goodbye does not get its will published. What came before it is handled first.
   */
  private handleHeldDisconnect(): void {
    const held = this.held;
    if (held === null || this.inputHeld || this.ending) return;
    const at = held.findIndex((p) => p.type === 'disconnect');
    if (at < 0) return;
    this.held = null;
    for (const packet of held.slice(0, at + 1)) this.handle(packet);
  }

  /** Handles waiting packets, in order, while input is neither held nor throttled. */
  private handleHeld(): void {
    while (this.held !== null && !this.inputHeld && this.throttles === 0 && !this.gone && !this.ending) {
      const packet = this.held.shift()!;
      if (this.held.length === 0) this.held = null;
      this.handle(packet);
    }
  }

  private protocolFailure(err: unknown): void {
    if (err instanceof ProtocolError) {
      if (err.code === 'PACKET_TOO_LARGE') this.ctx.limits.hit('packet_size');
      else if (err.code === 'RECEIVE_MAXIMUM_EXCEEDED') this.ctx.limits.hit('receive_maximum');
      this.channel.fail(err);
      return;
    }
    // A bug, not the client's fault: close this connection only, never the process.
    this.ctx.logger.error({
      event: 'connection.internal_error',
      clientId: this.channel.clientId,
      err: String((err as Error)?.stack ?? err),
    });
    this.channel.disconnect(0x80, 'internal error');
  }

  holdInput(hold: boolean): void {
    if (hold) {
      this.inputHeld = true;
      // Stop reading while held, so what a client may send meanwhile stays bounded.
      this.pause(Pause.Held);
      return;
    }
    this.inputHeld = false;
    this.unpause(Pause.Held);
    this.handleHeld();
  }

  // ---- writes ------------------------------------------------------------------------------------

  write(bytes: Buffer): void {
    if (this.gone) return;
    if (this.pending === NONE) this.pending = [];
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.schedule();
  }

  writePublish(header: Buffer, payload: Buffer): void {
    if (this.gone) return;
    if (this.pending === NONE) this.pending = [];
    this.pending.push(header);
    this.pendingBytes += header.length;
    if (payload.length > 0) {
      this.pending.push(payload);
      this.pendingBytes += payload.length;
    }
    this.schedule();
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    flushQueue.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      process.nextTick(flushAll);
    }
  }

  flush(): void {
    this.queued = false;
    if (this.gone || this.pending.length === 0) {
      if (this.ending && !this.gone) this.transport.end();
      return;
    }
    const chunks = this.pending;
    const bytes = this.pendingBytes;
    this.pending = NONE;
    this.pendingBytes = 0;
    this.transport.writeBatch(chunks.length > 1 ? coalesce(chunks, bytes) : chunks);
    if (this.ending) {
      this.transport.end();
      return;
    }
    if (this.transport.bufferedBytes >= this.ctx.options.slowClientBufferBytes) this.pause(Pause.Slow);
  }

  /** @internal */
  onDrain(): void {
    this.unpause(Pause.Slow);
    this.channel.session?.pump();
  }

  // ---- timers ------------------------------------------------------------------------------------

  setKeepAlive(ms: number): void {
    this.timer?.cancel();
    this.timer = undefined;
    this.keepAliveMs = ms;
    if (ms > 0) this.armKeepAlive(ms);
  }

  private armKeepAlive(ms: number): void {
    this.timer = this.ctx.clock.setTimeout(() => {
      const idle = this.ctx.clock.now() - this.lastActivity;
      if (idle >= this.keepAliveMs) this.channel.keepAliveExpired();
      else this.armKeepAlive(this.keepAliveMs - idle);
    }, ms);
  }

  private connectTimedOut(): void {
    this.timer = undefined;
    if (this.channel.state === 'awaiting-connect' || this.channel.state === 'connecting') {
      this.ctx.limits.hit('connect_timeout');
      this.ctx.logger.debug({ event: 'connection.connect_timeout', remote: this.remoteAddress });
      this.destroy();
    }
  }

  // ---- closing -----------------------------------------------------------------------------------

  /** Flushes what is queued, then closes the transport. */
  close(): void {
    if (this.gone || this.ending) return;
    this.ending = true;
    this.timer?.cancel();
    // end() only half-closes: a peer that never sends its FIN (dead, or hostile) would keep the
    // socket forever, past keep-alive. Drop it after a grace period.
    this.timer = this.ctx.clock.setTimeout(() => this.destroy(), CLOSE_GRACE_MS);
    this.schedule();
  }

  closeWhen(settled: Promise<unknown>): void {
    let done = false;
    const close = () => {
      if (done) return;
      done = true;
      timer.cancel();
      this.close();
    };
    const timer = this.ctx.clock.setTimeout(close, CLOSE_WAIT_MS);
    settled.then(close, close);
  }

  /** Server-side close for a drain: DISCONNECT `reasonCode` (MQTT 5), no will, then close. */
  shutdown(reasonCode: number, serverReference?: string): void {
    this.channel.disconnect(reasonCode, 'server shutting down', { will: false, serverReference });
    if (this.channel.state !== 'closed') this.close();
    // A peer that never reads must not hold the shutdown: destroy after a bounded wait.
    this.ctx.clock.setTimeout(() => this.destroy(), 2000);
  }

  destroy(): void {
    if (this.gone) return;
    this.transport.destroy();
    this.onTransportClose();
  }

  /** @internal */
  onTransportClose(): void {
    if (this.gone) return;
    this.handleHeldDisconnect();
    this.gone = true;
    this.timer?.cancel();
    this.pending = NONE;
    this.channel.transportClosed();
    this.onClosed?.(this);
    this.resolveClosed?.();
    this.closedPromise ??= Promise.resolve();
  }
}

/** The transport's events for a connection: one small object, not a closure per event. */
class Events implements TransportEvents {
  constructor(private readonly c: Connection) {}
  data(chunk: Buffer): void {
    this.c.onData(chunk);
  }
  drain(): void {
    this.c.onDrain();
  }
  close(): void {
    this.c.onTransportClose();
  }
  error(): void {
    // The close event follows.
  }
}

/**
 * Copies runs of small buffers into shared ones: a turn's worth of small packets becomes a few
 * large writes instead of thousands of iovecs (the kernel takes at most 1024 per writev). Large
 * payloads stay as they are, shared and uncopied.
 */
function coalesce(chunks: Buffer[], total: number): Buffer[] {
  const out: Buffer[] = [];
  let run: Buffer | undefined;
  let at = 0;
  let left = total;
  for (const c of chunks) {
    left -= c.length;
    if (c.length >= LARGE_CHUNK) {
      if (run !== undefined) {
        out.push(run.subarray(0, at));
        run = undefined;
      }
      out.push(c);
      continue;
    }
    if (run === undefined || at + c.length > run.length) {
      if (run !== undefined) out.push(run.subarray(0, at));
      run = Buffer.allocUnsafe(Math.max(c.length, Math.min(COALESCE_BYTES, left + c.length)));
      at = 0;
    }
    at += c.copy(run, at);
  }
  if (run !== undefined) out.push(run.subarray(0, at));
  return out;
}
