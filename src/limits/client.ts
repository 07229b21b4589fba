/**
 * One client's message and byte rates (token buckets) and what happens over them: with 'pause',
 * reading from the client stops until its debt is paid, so TCP pushes back on it and nothing is
 * lost; with 'disconnect', the PUBLISH that exceeds the rate closes the connection (MQTT 5:
 * DISCONNECT 0x96 Message rate too high). Made only when a client rate is configured.
 */
import type { TimerHandle } from '../clock.js';
import { ReasonCode } from '../protocol/index.js';
import type { Limits } from './limits.js';
import { TokenBucket } from './token-bucket.js';

/** What the limiter needs from the connection: stop reading until the release is called. */
export interface Throttleable {
  throttle(): () => void;
}

export class ClientLimiter {
  private readonly messages: TokenBucket | undefined;
  private readonly bytes: TokenBucket | undefined;
  private release: (() => void) | undefined;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly limits: Limits,
    private readonly out: Throttleable,
  ) {
    const o = limits.options;
    const clock = limits.clock;
    if (o.clientMessagesPerSecond > 0)
      this.messages = new TokenBucket(
        o.clientMessagesPerSecond,
        o.clientMessageBurst || o.clientMessagesPerSecond,
        clock,
      );
    if (o.clientBytesPerSecond > 0)
      this.bytes = new TokenBucket(
        o.clientBytesPerSecond,
        o.clientByteBurst || o.clientBytesPerSecond,
        clock,
      );
  }

  /** True while reading is paused for the rate. */
  get paused(): boolean {
    return this.release !== undefined;
  }

  /**
   * Accounts one inbound PUBLISH with `payloadBytes` of payload. Returns 0, or the reason code to
   * disconnect with (disconnect mode: the client sent while its bucket was empty).
   */
  publish(payloadBytes: number): number {
    const { messages, bytes } = this;
    if (this.limits.options.rateLimitAction === 'disconnect') {
      if (messages !== undefined && messages.balance <= 0) {
        this.limits.hit('message_rate');
        return ReasonCode.MessageRateTooHigh;
      }
      if (bytes !== undefined && bytes.balance <= 0) {
        this.limits.hit('byte_rate');
        return ReasonCode.MessageRateTooHigh;
      }
      messages?.spend(1);
      bytes?.spend(payloadBytes);
      return 0;
    }
    const overMessages = messages !== undefined && messages.spend(1) < 0;
    const overBytes = bytes !== undefined && bytes.spend(payloadBytes) < 0;
    if ((overMessages || overBytes) && this.release === undefined) {
      this.limits.hit(overMessages ? 'message_rate' : 'byte_rate');
      this.release = this.out.throttle();
      this.wait();
    }
    return 0;
  }

  /** The connection is gone: no timer may outlive it. */
  close(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Keeps reading paused until both buckets are out of debt (packets already read add to it). */
  private wait(): void {
    const ms = Math.max(this.messages?.debtMs ?? 0, this.bytes?.debtMs ?? 0);
    if (ms > 0) {
      this.timer = this.limits.clock.setTimeout(() => this.wait(), ms);
      return;
    }
    this.timer = undefined;
    const release = this.release;
    this.release = undefined;
    release?.();
  }
}
