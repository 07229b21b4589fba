/**
 * One client connection: bytes from the transport go through the decoder into the channel; bytes
 * from the channel are batched per event-loop turn and written in one go. Owns the connect timeout,
 * the keep-alive timer and read backpressure (stop reading from a client whose outbound buffer is
 * over the high-water mark).
 */
import { Channel, type ChannelOutput } from '../channel/channel.js';
import type { ChannelContext } from '../channel/context.js';
import type { TimerHandle } from '../clock.js';
import { type Packet, PacketDecoder, ProtocolError } from '../protocol/index.js';
import type { Transport } from '../transport/types.js';

/** Connections with writes pending in this turn; flushed together in one nextTick. */
let flushQueue: Connection[] = [];
let flushScheduled = false;

/** How long a closing connection waits for the peer's FIN before the socket is destroyed. */
const CLOSE_GRACE_MS = 5_000;

function flushAll(): void {
  const queue = flushQueue;
  flushQueue = [];
  flushScheduled = false;
  for (const c of queue) c.flush();
}

export class Connection implements ChannelOutput {
  readonly channel: Channel;
  readonly closed: Promise<void>;
  onClosed: (() => void) | undefined;

  private readonly decoder: PacketDecoder;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private queued = false;
  private ending = false;
  private gone = false;
  private readPaused = false;
  private held: Packet[] | null = null;
  private keepAliveMs = 0;
  private lastActivity = 0;
  private timer: TimerHandle | undefined;
  private resolveClosed!: () => void;

  constructor(
    private readonly transport: Transport,
    private readonly ctx: ChannelContext,
  ) {
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.channel = new Channel(ctx, this);
    this.decoder = new PacketDecoder((p) => this.dispatch(p), {
      maxPacketSize: ctx.options.maxPacketSizeBytes,
    });
    this.lastActivity = ctx.clock.now();
    // [MQTT-3.1.4-?] a connection that sends no CONNECT in time is closed.
    this.timer = ctx.clock.setTimeout(() => this.connectTimedOut(), ctx.options.connectTimeoutMs);
    transport.bind({
      data: (chunk) => this.onData(chunk),
      drain: () => this.onDrain(),
      close: () => this.onTransportClose(),
      error: () => undefined, // the close event follows
    });
  }

  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }

  get transportKind(): string {
    return this.transport.kind;
  }

  get bufferedBytes(): number {
    return this.pendingBytes + this.transport.bufferedBytes;
  }

  private onData(chunk: Buffer): void {
    this.lastActivity = this.ctx.clock.now();
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.protocolFailure(err);
    }
  }

  private dispatch(packet: Packet): void {
    if (this.gone || this.ending) return;
    if (this.held !== null) {
      this.held.push(packet);
      return;
    }
    try {
      this.channel.handle(packet);
    } catch (err) {
      this.protocolFailure(err);
    }
  }

  private protocolFailure(err: unknown): void {
    if (err instanceof ProtocolError) {
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
      this.held ??= [];
      // Stop reading while held, so what a client may send meanwhile stays bounded.
      this.transport.pause();
      return;
    }
    if (!this.readPaused) this.transport.resume();
    const held = this.held ?? [];
    this.held = null;
    for (const p of held) this.dispatch(p);
  }

  // ---- writes ------------------------------------------------------------------------------------

  write(bytes: Buffer): void {
    if (this.gone) return;
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    this.schedule();
  }

  writePublish(header: Buffer, payload: Buffer): void {
    if (this.gone) return;
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
    this.pending = [];
    this.pendingBytes = 0;
    this.transport.writeBatch(chunks);
    if (this.ending) {
      this.transport.end();
      return;
    }
    if (!this.readPaused && this.transport.bufferedBytes >= this.ctx.options.slowClientBufferBytes) {
      this.readPaused = true;
      this.transport.pause();
    }
  }

  private onDrain(): void {
    if (this.readPaused) {
      this.readPaused = false;
      this.transport.resume();
    }
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

  shutdown(reasonCode: number): void {
    this.channel.disconnect(reasonCode, 'server shutting down', { will: false });
    if (this.channel.state !== 'closed') this.close();
    // A peer that never reads must not hold the shutdown: destroy after a bounded wait.
    this.ctx.clock.setTimeout(() => this.destroy(), 2000);
  }

  destroy(): void {
    if (this.gone) return;
    this.transport.destroy();
    this.onTransportClose();
  }

  private onTransportClose(): void {
    if (this.gone) return;
    this.gone = true;
    this.timer?.cancel();
    this.pending = [];
    this.channel.transportClosed();
    this.onClosed?.();
    this.resolveClosed();
  }
}
